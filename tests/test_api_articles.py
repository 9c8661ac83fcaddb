"""/v1/articles over real HTTP (httpx → ASGI) on both backends."""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session

from app import schemas
from app.db import make_engine
from app.main import create_app
from app.queries.articles import get_article_fields
from app.settings import Settings
from tests.factories import CORPUS_IDS, CORPUS_SOURCES, SEED_FILE, add_articles, make_client, record

pytestmark = pytest.mark.anyio

ALL_IDS = sorted([*CORPUS_IDS, 166812], reverse=True)
SEED = json.loads(json.loads(SEED_FILE.read_text()))


def ids(page: dict[str, Any]) -> list[int]:
    return [item["article_id"] for item in page["items"]]


async def walk(client: httpx.AsyncClient, url: str, rel: str = "next") -> list[dict[str, Any]]:
    """Every page from `url`, following `rel` links until there are none."""
    pages = []
    next_url: str | None = url
    while next_url:
        response = await client.get(next_url)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        next_url = page[rel]
        assert len(pages) < 500
    return pages


async def test_first_page_is_newest_first_with_default_limit(seeded: httpx.AsyncClient) -> None:
    response = await seeded.get("/v1/articles")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    page = response.json()
    assert set(page) == {"items", "next", "prev", "total", "total_is_exact"}
    assert (page["total"], page["total_is_exact"]) == (None, None)
    assert ids(page) == ALL_IDS[:20]
    assert page["prev"] is None
    assert page["next"].startswith("/v1/articles?cursor=")
    assert set(page["items"][0]) == {
        "article_id",
        "source_id",
        "title",
        "excerpt",
        "word_count",
        "published_at",
        "url",
        "author",
    }


async def test_list_items_carry_an_excerpt_not_the_content(seeded: httpx.AsyncClient) -> None:
    item = (await seeded.get("/v1/articles?limit=1")).json()["items"][0]
    assert item["article_id"] == 166812
    assert item["excerpt"].endswith("…")
    assert len(item["excerpt"]) <= 241
    assert SEED["content"].startswith(item["excerpt"][:-1])


@pytest.mark.parametrize("limit", [1, 7, 20, 100])
async def test_walking_forward_then_back_visits_each_article_once(
    seeded: httpx.AsyncClient, limit: int
) -> None:
    forward = await walk(seeded, f"/v1/articles?limit={limit}")
    seen = [i for page in forward for i in ids(page)]
    assert seen == ALL_IDS
    assert all(len(p["items"]) == limit for p in forward[:-1])
    backward = await walk(seeded, forward[-1]["prev"], rel="prev") if forward[-1]["prev"] else []
    back_seen = [i for page in reversed(backward) for i in ids(page)] + ids(forward[-1])
    assert back_seen == ALL_IDS


async def test_link_header_matches_body(seeded: httpx.AsyncClient) -> None:
    first = await seeded.get("/v1/articles?limit=5")
    second = await seeded.get(first.json()["next"])
    body = second.json()
    assert second.headers["link"] == f'<{body["next"]}>; rel="next", <{body["prev"]}>; rel="prev"'
    assert first.headers["link"] == f'<{first.json()["next"]}>; rel="next"'


@pytest.mark.parametrize("sources", [(2,), (5, 7), (2, 5, 7)])
async def test_source_filter_walks_exactly_that_source(
    seeded: httpx.AsyncClient, sources: tuple[int, ...]
) -> None:
    query = "&".join(f"source_id={s}" for s in sources)
    pages = await walk(seeded, f"/v1/articles?limit=9&{query}")
    expected = sorted(
        [a for n, a in enumerate(CORPUS_IDS) if CORPUS_SOURCES[n % 3] in sources]
        + ([166812] if 2 in sources else []),
        reverse=True,
    )
    assert [i for p in pages for i in ids(p)] == expected
    assert all(item["source_id"] in sources for p in pages for item in p["items"])
    for page in pages[:-1]:
        assert query in page["next"]
    backward = await walk(seeded, pages[-1]["prev"], rel="prev")
    assert [i for p in reversed(backward) for i in ids(p)] + ids(pages[-1]) == expected


async def test_unknown_source_filter_is_an_empty_page(seeded: httpx.AsyncClient) -> None:
    page = (await seeded.get("/v1/articles?source_id=999")).json()
    assert page == {"items": [], "next": None, "prev": None, "total": None, "total_is_exact": None}


async def test_cursor_replayed_under_another_filter_is_400(seeded: httpx.AsyncClient) -> None:
    page = (await seeded.get("/v1/articles?limit=5&source_id=2")).json()
    cursor = page["next"].split("cursor=")[1]
    response = await seeded.get(f"/v1/articles?limit=5&source_id=5&cursor={cursor}")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:article-corpus:problem:invalid-cursor"


@pytest.mark.parametrize("cursor", ["", "abc", "%%%", "A" * 3000, "eyJrIjpbMV19", "🙂"])
async def test_garbage_cursor_is_400_or_422(seeded: httpx.AsyncClient, cursor: str) -> None:
    response = await seeded.get("/v1/articles", params={"cursor": cursor})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_tampered_cursor_is_400(seeded: httpx.AsyncClient) -> None:
    page = (await seeded.get("/v1/articles?limit=5")).json()
    cursor = page["next"].split("cursor=")[1]
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    response = await seeded.get(f"/v1/articles?limit=5&cursor={flipped}")
    assert response.status_code == 400
    assert response.json()["status"] == 400


async def test_detail_returns_content_byte_for_byte(seeded: httpx.AsyncClient) -> None:
    response = await seeded.get("/v1/articles/166812")
    assert response.status_code == 200
    article = response.json()
    assert article["content"] == SEED["content"]
    assert article["title"] == SEED["title"]
    assert article["source_id"] == 2
    assert article["content"].encode("utf-8") == SEED["content"].encode("utf-8")
    assert article["ingested_at"].endswith(("Z", "+00:00"))
    assert article["updated_at"] >= article["ingested_at"]


async def test_unknown_article_is_a_404_problem(seeded: httpx.AsyncClient) -> None:
    response = await seeded.get("/v1/articles/424242")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    body.pop("request_id", None)  # added by the request-id middleware, where installed
    assert body == {
        "type": "urn:article-corpus:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No article with article_id 424242.",
        "instance": "/v1/articles/424242",
    }


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("/v1/articles?limit=0", ["limit"]),
        ("/v1/articles?limit=101", ["limit"]),
        ("/v1/articles?limit=abc", ["limit"]),
        ("/v1/articles?source_id=x", ["source_id"]),
        ("/v1/articles?source_id=0", ["source_id"]),
        ("/v1/articles?source_id=99999999999999999999999", ["source_id"]),
        ("/v1/articles?limit=-1&source_id=-1", ["limit", "source_id"]),
        ("/v1/articles/0", ["article_id"]),
        ("/v1/articles/abc", ["article_id"]),
        ("/v1/articles/9223372036854775808", ["article_id"]),
    ],
)
async def test_bad_parameters_are_422_naming_each(
    seeded: httpx.AsyncClient, url: str, names: list[str]
) -> None:
    response = await seeded.get(url)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert body["type"] == "urn:article-corpus:problem:invalid-parameter"
    assert sorted({e["name"] for e in body["errors"]}) == names
    assert all(set(e) == {"location", "name", "message", "type"} for e in body["errors"])


async def test_unknown_route_and_method_are_problems(seeded: httpx.AsyncClient) -> None:
    missing = await seeded.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["title"] == "Not Found"
    wrong = await seeded.post("/v1/articles")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"
    assert "GET" in wrong.headers["allow"]


@pytest.mark.parametrize("request_path", ["/api/v1/articles", "/v1/articles"])
async def test_links_carry_the_mount_prefix_once(seeded_url: str, request_path: str) -> None:
    """Behind a proxy mounting us at /api, whether the server puts the prefix in the path
    (current ASGI servers) or not (older ones), the links name it exactly once."""
    app = create_app(Settings(database_url=seeded_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            page = (await client.get(request_path, params={"limit": 2})).json()
    assert page["next"].startswith("/api/v1/articles?limit=2&cursor=")


# Values whose JSON spelling could differ between serialisers.
TRICKY_EXTRA: dict[str, Any] = {
    "score": 0.1,
    "tiny": 1e-300,
    "huge": 1e300,
    "negative_zero": -0.0,
    "count": -5,
    "limit": 2**63 - 1,
    "text": 'é ✓ 🙂 \u2028 "quoted" \\ </script>',
    "nested": {"list": [1, None, True, 2.5], "empty": {}},
}


async def test_detail_json_is_what_the_schema_would_write(database_url: str) -> None:
    engine = make_engine(Settings(database_url=database_url))
    try:
        add_articles(engine, [record(81, **TRICKY_EXTRA), record(82), record(83)])
        with engine.begin() as connection:  # past 64 bits: only the fallback can write it
            connection.execute(
                text("UPDATE article SET extra = :extra WHERE article_id = 83"),
                {"extra": '{"big": 1267650600228229401496703205376}'},
            )
        async with make_client(database_url) as client:
            for article_id in (81, 82, 83):
                response = await client.get(f"/v1/articles/{article_id}")
                assert response.status_code == 200
                with Session(engine) as session:
                    fields = get_article_fields(session, article_id)
                model = schemas.Article.model_construct(**fields)
                assert response.content == model.__pydantic_serializer__.to_json(model)
    finally:
        engine.dispose()
    assert json.loads(response.content)["extra"] == {"big": 2**100}
