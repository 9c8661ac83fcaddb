"""The fast routes (app/api/fastpath.py) answer exactly as FastAPI's routes, on both backends.

Every request is sent to two apps on the same database, one with the fast routes and one
without, and the responses must agree: status, headers and body bytes. Query strings are
generated from the list's parameters with valid, odd and invalid values, so both answers
and every kind of error are covered; request headers vary what the middleware does to a
response (gzip, validators and 304s, CORS), with CORS configured and without.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from starlette.types import Message

from app.api import articles as api_articles
from app.api import fastpath
from app.api.list_query import ArticleListQuery, QueryModel, read_query
from app.api.shedding import Admission
from app.db import make_engine
from app.errors import UnknownParameter
from app.main import create_app
from app.queries.articles import Content, Sort
from app.queries.counts import CountMode, Facet
from app.search.options import SearchField
from app.settings import Settings
from tests.factories import CORPUS_IDS, add_articles, client_for, record

pytestmark = pytest.mark.anyio

# Starlette's GZipMiddleware compresses a body at least this large on a worker thread.
GZIP_THREAD_SIZE = 128 * 1024

# Request ids are random per response; a fixed one makes problem bodies comparable.
HEADERS = {"X-Request-ID": "fastpath-test"}
ALLOWED_ORIGIN = "https://app.example"
REQUEST_HEADERS = {
    "Accept-Encoding": ["gzip, deflate", "identity", "br"],
    "Origin": [ALLOWED_ORIGIN, "https://elsewhere.example"],
    "If-None-Match": ["*", '"stale"', 'W/"stale", "other"'],
}
IDS = [str(i) for i in CORPUS_IDS[:5]]
VALUES = {
    "limit": ["1", "7", "20", "100", "101", "0", "-1", "05", "+5", " 5", "x", ""],
    "source_id": ["2", "5", "7", "3", "0", "9223372036854775808", "two", ""],
    "sort": ["-article_id", "article_id", "title", "-title", "relevance", "TITLE", ""],
    "content": ["none", "excerpt", "full", "all", ""],
    "fields": ["article_id,title", "title", "excerpt,word_count", "nope", ",", ""],
    "id_min": ["1", "100", "500", "0", "abc"],
    "id_max": ["1", "300", "9223372036854775807", "9223372036854775808"],
    "ids": [",".join(IDS), IDS[0], "1,2,x", "", ",".join(str(i) for i in range(1, 102))],
    "count": ["none", "exact", "estimated", "all"],
    "facet": ["source_id", "title"],
    "q": ["title", "", " ", '"title 0" -missing', "a" * 1001],
    "cursor": ["bogus", "a" * 3000],
    "unknown": ["1"],
}
request_headers = st.fixed_dictionaries(
    {}, optional={name: st.sampled_from(values) for name, values in REQUEST_HEADERS.items()}
)
params = st.lists(
    st.sampled_from(sorted(VALUES)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(VALUES[name]))
    ),
    max_size=5,
)


@pytest.fixture(params=[[], [ALLOWED_ORIGIN]], ids=["no-cors", "cors"])
async def both(
    seeded_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    origins = request.param
    async with (
        _client(seeded_url, cors_allow_origins=origins) as fast,
        _client(seeded_url, fast_reads=False, cors_allow_origins=origins) as slow,
    ):
        yield fast, slow


def _client(database_url: str, **settings: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return client_for(create_app(Settings(database_url=database_url, **settings)))


async def same(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    url: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """The response both apps give, which must be the same: status, headers (in order) and
    body. httpx decompresses gzip; a gzip header's timestamp is the one byte range that may
    differ, so the raw bodies are compared decoded."""
    fast, slow = clients
    sent = {**HEADERS, **(headers or {})}
    a = await fast.get(url, headers=sent)
    b = await slow.get(url, headers=sent)
    assert (a.status_code, a.content) == (b.status_code, b.content), url
    assert a.headers.multi_items() == b.headers.multi_items(), (url, sent)
    return a


async def revalidated(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    url: str,
    response: httpx.Response,
    headers: dict[str, str],
) -> None:
    """A 200's own ETag sent back gives the same 304 from both apps."""
    if response.status_code == 200:
        again = {**headers, "If-None-Match": response.headers["etag"]}
        assert (await same(clients, url, again)).status_code == 304


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=params, headers=request_headers)
async def test_lists_agree(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient],
    query: list[tuple[str, str]],
    headers: dict[str, str],
) -> None:
    url = "/v1/articles?" + urlencode(query)
    response = await same(both, url, headers)
    await revalidated(both, url, response, headers)
    if response.status_code == 200 and response.json()["next"]:
        # The second page, by the cursor the first gave, and back again.
        second = await same(both, response.json()["next"])
        if second.json()["prev"]:
            await same(both, second.json()["prev"])


async def test_walks_agree(both: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    for query in ("limit=7", "limit=9&sort=title&source_id=5", "limit=4&id_min=100&sort=-title"):
        url: str | None = "/v1/articles?" + query
        pages = 0
        while url:
            url = (await same(both, url)).json()["next"]
            pages += 1
        assert pages >= 3


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/articles/{CORPUS_IDS[3]}",
        "/v1/articles/166812",  # the real seed article
        "/v1/articles/4",  # absent
        "/v1/articles/0",
        "/v1/articles/007",
        "/v1/articles/abc",
        "/v1/articles/9223372036854775808",
        f"/v1/articles/{CORPUS_IDS[3]}/",
        "/v1/articlesx",
    ],
)
async def test_details_agree(both: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str) -> None:
    for headers in [{}, {"Accept-Encoding": "identity", "Origin": ALLOWED_ORIGIN}]:
        await revalidated(both, path, await same(both, path, headers), headers)


@pytest.mark.parametrize("path", ["/v1/articles?limit=3", f"/v1/articles/{CORPUS_IDS[0]}"])
async def test_head_agrees_and_is_a_get_without_its_body(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], path: str
) -> None:
    fast, slow = both
    got = await fast.get(path, headers=HEADERS)
    for client in (fast, slow):
        head = await client.head(path, headers=HEADERS)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers.multi_items() == got.headers.multi_items()


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_other_methods_agree(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], method: str
) -> None:
    fast, slow = both
    for url in ("/v1/articles", f"/v1/articles/{CORPUS_IDS[0]}"):
        a = await fast.request(method, url, headers=HEADERS)
        b = await slow.request(method, url, headers=HEADERS)
        assert a.status_code == 405, (method, url)
        assert (a.status_code, a.content) == (b.status_code, b.content)
        assert a.headers.multi_items() == b.headers.multi_items()


def test_reads_the_query_as_fastapi_does() -> None:
    query = "limit=5&sort=title&content=none&source_id=2&q=a&count=exact&facet=source_id&_x=1"
    options = read_query(ArticleListQuery, QueryParams(query)).options([2])
    assert (options.limit, options.sort, options.content) == (5, Sort.TITLE, Content.NONE)
    assert (options.flt.source_ids, options.flt.q, options.count, options.facets) == (
        (2,),
        "a",
        CountMode.EXACT,
        [Facet.SOURCE_ID],
    )
    assert read_query(ArticleListQuery, QueryParams("limit=5&limit=6")).limit == 6  # the last
    assert read_query(ArticleListQuery, QueryParams("source_id=3,4&source_id=5")).source_id == [
        3,
        4,
        5,
    ]
    with pytest.raises(UnknownParameter) as unknown:
        read_query(ArticleListQuery, QueryParams("search=a"))
    assert unknown.value.suggestions == {"search": "q"}
    for bad, name in [("count=all", "count"), ("facet=title", "facet"), ("limit=0", "limit")]:
        with pytest.raises(RequestValidationError) as raised:
            read_query(ArticleListQuery, QueryParams(bad))
        assert [e["loc"][:2] for e in raised.value.errors()] == [("query", name)]


def test_no_query_model_default_is_copied_per_request() -> None:
    """See list_query.repeated_default."""
    models, todo = [], [QueryModel]
    while todo:
        models.append(model := todo.pop())
        todo += model.__subclasses__()
    assert ArticleListQuery in models
    for model in models:
        for name, field in model.model_fields.items():
            assert not isinstance(field.default, list | dict | set), (model.__name__, name)
    defaults = read_query(ArticleListQuery, QueryParams(""))
    assert list(defaults.search_in) == [SearchField.TITLE, SearchField.CONTENT]


async def test_an_optional_list_repeats_on_both_paths() -> None:
    """read_query takes a repeated parameter by FastAPI's own rule: `list[int] | None`
    repeats too (a `get_origin(annotation) is list` test read only its last value)."""

    class Optional(QueryModel):
        picked: list[int] | None = None
        one: int | None = None

    found = read_query(Optional, QueryParams("picked=1&picked=2&one=3&one=4"))
    assert (found.picked, found.one) == ([1, 2], 4)
    app = FastAPI()

    @app.get("/x")
    def x(query: Annotated[Optional, Query()]) -> dict[str, object]:
        return query.model_dump()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/x?picked=1&picked=2&one=3&one=4")
    assert answer.json() == found.model_dump()


def test_the_comma_form_follows_the_type_of_a_list_s_items() -> None:
    class Kinds(QueryModel):
        ids: list[int]
        kinds: list[Literal["a", "b:c"]]
        names: list[str]  # free text: a comma is part of a name

    found = Kinds.model_validate({"ids": ["1,2"], "kinds": ["a,b:c"], "names": ["Doe, Jane"]})
    assert (found.ids, found.kinds, found.names) == ([1, 2], ["a", "b:c"], ["Doe, Jane"])


async def test_an_unexpected_error_on_the_fast_path_is_the_same_500_problem(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api_articles, "article_json", broken)  # every detail writes one
    response = await same(both, f"/v1/articles/{CORPUS_IDS[3]}", {"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me"
    assert response.json()["request_id"] == "trace-me"
    assert "secret" not in response.text


async def test_the_fast_path_waits_in_the_same_line_and_sheds_as_the_stack_does(
    seeded_url: str,
) -> None:
    app = create_app(
        Settings(database_url=seeded_url, max_concurrent_requests=1, queue_timeout_s=0.2)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/v1/articles")).status_code == 200
            gate = app.state.load_gate
            admission, _ = await gate.admit(_never_called)
            assert admission is Admission.ENTERED  # the only slot, held as a slow request would
            for url in ("/v1/articles", f"/v1/articles/{CORPUS_IDS[0]}", "/v1/sources"):
                shed = await client.get(url, headers=HEADERS)
                assert shed.status_code == 503, url
                assert shed.headers["retry-after"] == "2"
                assert shed.headers["cache-control"] == "no-store"
                assert shed.headers["x-request-id"] == HEADERS["X-Request-ID"]
                assert shed.json()["request_id"] == HEADERS["X-Request-ID"]
            waiting = asyncio.create_task(client.get("/v1/articles"))
            await asyncio.sleep(0.05)
            gate.leave()
            assert (await waiting).status_code == 200  # waited for the slot, then served


async def _never_called() -> Message:
    raise AssertionError("a free slot is taken without reading the request")


async def test_a_body_large_enough_to_compress_on_a_thread_agrees(database_url: str) -> None:
    engine = make_engine(Settings(database_url=database_url))
    try:
        add_articles(engine, [record(91, content="many words of text " * 12_000)])  # 228 KB
    finally:
        engine.dispose()
    async with (
        _client(database_url) as fast,
        _client(database_url, fast_reads=False) as slow,
    ):
        for url in ("/v1/articles/91", "/v1/articles?content=full"):
            response = await same((fast, slow), url, {"Accept-Encoding": "gzip"})
            assert response.headers["content-encoding"] == "gzip"
            assert len(response.content) > GZIP_THREAD_SIZE


def test_the_fast_reads_are_the_innermost_middleware_unless_fastapi_traces_its_routes(
    database_url: str,
) -> None:
    def innermost(**settings: Any) -> object:
        return create_app(Settings(database_url=database_url, **settings)).user_middleware[-1].cls

    assert innermost() is fastpath.FastReads
    assert innermost(fast_reads=False) is not fastpath.FastReads
    assert innermost(opentelemetry=True) is not fastpath.FastReads


async def test_a_bug_met_only_on_the_fast_path_is_the_stack_s_500_problem(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fast path only")

    monkeypatch.setattr("app.api.fastpath.read_query", broken)
    fast, _ = both
    response = await fast.get("/v1/articles?limit=2", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me"
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["request_id"] == "trace-me"
    assert "fast path only" not in response.text
