"""/v1/sources, the articles of one source, and the health probes."""

import httpx
import pytest
from sqlalchemy import Engine

from tests.factories import CORPUS_IDS, CORPUS_SOURCES

pytestmark = pytest.mark.anyio


def count(source_id: int) -> int:
    extra = 1 if source_id == 2 else 0  # the seed article
    return sum(1 for n, _ in enumerate(CORPUS_IDS) if CORPUS_SOURCES[n % 3] == source_id) + extra


async def test_sources_list_names_and_counts(seeded: httpx.AsyncClient) -> None:
    response = await seeded.get("/v1/sources")
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"source_id": 2, "name": "Reuters", "article_count": count(2)},
            {"source_id": 5, "name": "BBC", "article_count": count(5)},
            {"source_id": 7, "name": None, "article_count": count(7)},
        ]
    }


async def test_one_source(seeded: httpx.AsyncClient) -> None:
    response = await seeded.get("/v1/sources/5")
    assert response.json() == {"source_id": 5, "name": "BBC", "article_count": count(5)}


async def test_unknown_source_is_404(seeded: httpx.AsyncClient) -> None:
    for url in ("/v1/sources/3", "/v1/sources/3/articles"):
        response = await seeded.get(url)
        assert response.status_code == 404
        assert response.json()["detail"] == "No source with source_id 3."


async def test_source_articles_walk_matches_the_filter(seeded: httpx.AsyncClient) -> None:
    seen: list[int] = []
    url: str | None = "/v1/sources/7/articles?limit=6"
    while url:
        page = (await seeded.get(url)).json()
        seen += [item["article_id"] for item in page["items"]]
        assert all(item["source_id"] == 7 for item in page["items"])
        url = page["next"]
        if url:
            assert url.startswith("/v1/sources/7/articles?")
    expected = sorted(
        (a for n, a in enumerate(CORPUS_IDS) if CORPUS_SOURCES[n % 3] == 7), reverse=True
    )
    assert seen == expected


async def test_health_and_readiness(seeded: httpx.AsyncClient) -> None:
    assert (await seeded.get("/healthz")).json() == {"status": "ok"}
    ready = await seeded.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    index = body["search_index"]
    assert index["state"] == "ready"
    assert index["revision"] == index["database_revision"] > 0


async def test_readiness_is_503_when_the_database_is_unreachable() -> None:
    from tests.factories import make_client

    url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    async with make_client(url) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert response.headers["content-type"] == "application/problem+json"
        articles = await client.get("/v1/articles")
        assert articles.status_code == 503


async def test_counts_follow_an_ingest_and_names_a_rename(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    from app.ingest.stores import upsert_sources
    from tests.factories import add_articles, record

    add_articles(engine, [record(1, source_id=4), record(2, source_id=4)])
    first = (await client.get("/v1/sources")).json()
    assert first == {"items": [{"source_id": 4, "name": None, "article_count": 2}]}
    add_articles(engine, [record(3, source_id=4), record(2, source_id=6)])
    with engine.begin() as connection:
        upsert_sources(connection, {4: "Agence"})
    after = (await client.get("/v1/sources")).json()
    assert after == {
        "items": [
            {"source_id": 4, "name": "Agence", "article_count": 2},
            {"source_id": 6, "name": None, "article_count": 1},
        ]
    }
    one = (await client.get("/v1/sources/6")).json()
    assert one == {"source_id": 6, "name": None, "article_count": 1}
