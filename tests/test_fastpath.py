"""The fast path (app/api/fastpath.py) answers exactly as FastAPI does, on both backends.

Every request is sent to two apps on the same database, one with the fast path and one
without, and the responses must agree: status, headers and body bytes. Query strings are
generated from the list's parameters with valid, odd and invalid values, so both the
requests the fast path serves and those it hands to FastAPI are covered.
"""

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from app.api.fastpath import FallThrough, list_params
from app.queries.articles import Content, Sort
from app.queries.counts import CountMode, Facet
from tests.conftest import CORPUS_IDS, make_client

pytestmark = pytest.mark.anyio

# Request ids are random per response; a fixed one makes problem bodies comparable.
HEADERS = {"X-Request-ID": "fastpath-test"}
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
params = st.lists(
    st.sampled_from(sorted(VALUES)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(VALUES[name]))
    ),
    max_size=5,
)


@pytest.fixture
async def both(seeded_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async for fast in make_client(seeded_url):
        async for slow in make_client(seeded_url, fast_reads=False):
            yield fast, slow


async def same(clients: tuple[httpx.AsyncClient, httpx.AsyncClient], url: str) -> httpx.Response:
    fast, slow = clients
    a = await fast.get(url, headers=HEADERS)
    b = await slow.get(url, headers=HEADERS)
    assert (a.status_code, a.content) == (b.status_code, b.content), url
    assert dict(a.headers) == dict(b.headers), url
    return a


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=params)
async def test_lists_agree(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], query: list[tuple[str, str]]
) -> None:
    response = await same(both, "/v1/articles?" + urlencode(query))
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
    await same(both, path)


def test_parses_plain_spellings_and_hands_off_the_rest() -> None:
    query = "limit=5&sort=title&content=none&source_id=2&q=a&count=exact&facet=source_id&x=1"
    options, flt = list_params(QueryParams(query))
    assert (options.limit, options.sort, options.content) == (5, Sort.TITLE, Content.NONE)
    assert (flt.source_ids, flt.q, options.count, options.facets) == (
        (2,),
        "a",
        CountMode.EXACT,
        [Facet.SOURCE_ID],
    )
    handed_off = ["count=all", "facet=title", "limit=05", "limit=5&limit=6", "q=" + "a" * 1001]
    for query in [*handed_off, "sort=best", "ids=x", "fields=nope", "source_id=+2"]:
        with pytest.raises(FallThrough):
            list_params(QueryParams(query))
