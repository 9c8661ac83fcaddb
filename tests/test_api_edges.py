"""The edges a new client meets, on both backends, with and without the fast routes:
unknown parameters are a 400 that suggests the one meant, repeatable parameters take
both forms, every GET answers HEAD, and the exports take `limit`."""

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.factories import CORPUS_IDS, make_client

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"
GETS = [
    "/healthz",
    "/readyz",
    "/",
    "/explorer/explorer.js",
    "/docs",
    "/openapi.json",
    "/v1/articles?limit=3",
    f"/v1/articles/{CORPUS_IDS[0]}",
    f"/v1/articles/{CORPUS_IDS[0]}/similar?limit=2",
    "/v1/sources",
    "/v1/sources/2",
    "/v1/sources/2/articles?limit=2",
    "/v1/changes?limit=2",
    "/v1/export.jsonl?limit=2",
    "/v1/export.csv?source_id=5",
    "/v1/articles/999999",  # a 404 answers HEAD as GET does, too
]


@pytest.fixture(params=[True, False], ids=["fast", "fastapi"])
async def api(seeded_url: str, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(seeded_url, fast_reads=request.param) as client:
        yield client


def unknown(response: httpx.Response, name: str, suggestion: str | None) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:article-corpus:problem:unknown-parameter"
    error = body["errors"][0]
    assert (error["location"], error["name"], error["type"]) == (
        "query",
        name,
        "unknown_parameter",
    )
    assert error.get("suggestion") == suggestion
    if suggestion:
        assert f"did you mean {suggestion!r}" in body["detail"]


@pytest.mark.parametrize(
    ("url", "name", "suggestion"),
    [
        ("/v1/articles?search=palmyra", "search", "q"),
        ("/v1/articles?source=3", "source", "source_id"),
        ("/v1/articles?page=2", "page", "cursor"),
        ("/v1/articles?limt=2", "limt", "limit"),
        ("/v1/articles?sourceid=2&limit=2", "sourceid", "source_id"),
        (f"/v1/articles/{CORPUS_IDS[0]}?fields=title", "fields", None),
        (f"/v1/articles/{CORPUS_IDS[0]}/similar?sorce_id=2", "sorce_id", "source_id"),
        ("/v1/sources?limit=2", "limit", None),
        ("/v1/sources/2/articles?source_id=2", "source_id", None),
        ("/v1/changes?since=3", "since", None),
        ("/v1/export.csv?query=a", "query", "q"),
        ("/healthz?verbose=1", "verbose", None),
    ],
)
async def test_an_unknown_parameter_is_a_400_that_suggests_the_known_one(
    api: httpx.AsyncClient, url: str, name: str, suggestion: str | None
) -> None:
    unknown(await api.get(url), name, suggestion)


async def test_underscore_parameters_are_ignored_and_never_echoed(
    api: httpx.AsyncClient,
) -> None:
    busted = await api.get("/v1/articles", params={"limit": 2, "_": "1733", "_cb": "x"})
    plain = await api.get("/v1/articles", params={"limit": 2})
    assert busted.status_code == 200
    assert busted.json()["items"] == plain.json()["items"]
    assert set(parse_qs(urlsplit(busted.json()["next"]).query)) == {"limit", "cursor"}
    assert "1733" not in busted.headers["link"]
    details = await api.get(f"/v1/articles/{CORPUS_IDS[0]}", params={"_": "1"})
    assert details.status_code == 200


@pytest.mark.parametrize(
    ("path", "repeated", "commas"),
    [
        ("/v1/articles", "source_id=2&source_id=5", "source_id=2,5"),
        ("/v1/articles", "source_id=2&source_id=5&source_id=7", "source_id=2,5&source_id=7"),
        ("/v1/articles", "facet=source_id&count=exact", "facet=source_id,source_id&count=exact"),
        ("/v1/export.jsonl", "source_id=2&source_id=7", "source_id=2, 7"),
        (f"/v1/articles/{CORPUS_IDS[0]}/similar", "source_id=2&source_id=5", "source_id=2,5"),
    ],
)
async def test_repeatable_parameters_take_both_forms(
    api: httpx.AsyncClient, path: str, repeated: str, commas: str
) -> None:
    one = await api.get(f"{path}?{repeated}&limit=100")
    other = await api.get(f"{path}?{commas}&limit=100")
    assert one.status_code == other.status_code == 200, other.text
    if "export" in path:
        assert one.text.count("\n") > 1
        assert one.content == other.content
    else:
        assert one.json()["items"]
        assert one.json()["items"] == other.json()["items"]


async def test_a_bad_value_in_the_comma_form_is_a_422_naming_the_parameter(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/v1/articles?source_id=2,x")
    assert response.status_code == 422
    assert [e["name"] for e in response.json()["errors"]] == ["source_id"]


@pytest.mark.parametrize("url", GETS)
async def test_every_get_answers_head_with_its_headers_and_no_body(
    api: httpx.AsyncClient, url: str
) -> None:
    sent = {"X-Request-ID": "head-test", "Accept-Encoding": "gzip"}
    got = await api.get(url, headers=sent)
    head = await api.head(url, headers=sent)
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers.multi_items() == got.headers.multi_items()


async def test_a_wrong_method_says_get_and_head_are_allowed(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/articles")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_the_exports_take_limit(api: httpx.AsyncClient, fmt: str) -> None:
    def records(response: httpx.Response) -> list[Any]:
        assert response.status_code == 200, response.text
        lines = response.text.splitlines()
        return lines[1:] if fmt == "csv" else lines

    everything = records(await api.get(f"/v1/export.{fmt}"))
    first = records(await api.get(f"/v1/export.{fmt}", params={"limit": 3}))
    searched = records(await api.get(f"/v1/export.{fmt}", params={"limit": 2, "q": "body"}))
    assert first == everything[:3]
    assert len(searched) == 2
    bad = await api.get(f"/v1/export.{fmt}", params={"limit": 0})
    assert bad.status_code == 422
