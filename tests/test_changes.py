"""GET /v1/changes on both backends: revision order, paging by next_after, and a poller that
runs during an ingest and still sees every change exactly once."""

import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from app import models, takedowns
from app.ingest.pipeline import ingest
from tests.factories import add_articles, record

pytestmark = pytest.mark.anyio


async def changes(client: httpx.AsyncClient, **params: int) -> dict[str, Any]:
    response = await client.get("/v1/changes", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def test_empty_feed_returns_the_given_after(client: httpx.AsyncClient) -> None:
    assert await changes(client) == {"items": [], "next_after": 0}
    assert await changes(client, after=42) == {"items": [], "next_after": 42}


async def test_items_are_full_articles_in_revision_order_with_next_after(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    add_articles(engine, [record(i, url=f"u{i}") for i in (5, 3, 9)])
    add_articles(engine, [record(3, content="changed")])
    page = await changes(client, limit=2)
    assert [i["article_id"] for i in page["items"]] == [5, 9]  # 3 moved to the newest revision
    assert page["next_after"] == page["items"][-1]["revision"]
    item = page["items"][0]
    detail = (await client.get("/v1/articles/5")).json()
    assert item["deleted"] is False
    assert {k: v for k, v in item.items() if k not in ("revision", "deleted")} == detail
    rest = await changes(client, after=page["next_after"])
    assert [(i["article_id"], i["content"]) for i in rest["items"]] == [(3, "changed")]
    assert rest["items"][0]["revision"] > page["next_after"]
    assert await changes(client, after=rest["next_after"]) == {
        "items": [],
        "next_after": rest["next_after"],
    }


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": "x"}])
async def test_bad_parameters_are_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get("/v1/changes", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def loading(path: Path, engine: Engine, errors: list[object]) -> threading.Thread:
    """A thread (not started) that ingests `path` in small batches; its errors go to `errors`."""

    def load() -> None:
        try:
            ingest([path], engine, batch_size=25, on_reject=errors.append)
        except BaseException as exc:  # noqa: BLE001 - reported by the callers' assertions
            errors.append(exc)

    return threading.Thread(target=load)


async def test_poller_during_an_ingest_misses_and_repeats_nothing(
    client: httpx.AsyncClient, engine: Engine, tmp_path: Path
) -> None:
    add_articles(engine, [record(i) for i in range(1, 301)])
    # Updates to half the stored rows, interleaved with new ones, over many small batches.
    updates = [record(i, content=f"second version {i}") for i in range(1, 301, 2)]
    inserts = [record(i) for i in range(301, 901)]
    path = tmp_path / "load.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [*updates, *inserts]))
    errors: list[object] = []
    loader = loading(path, engine, errors)
    seen: dict[int, dict[str, Any]] = {}
    revisions: list[int] = []
    after = 0
    loader.start()
    while True:
        running = loader.is_alive()
        page = await changes(client, after=after, limit=40)
        for item in page["items"]:
            revisions.append(item["revision"])
            seen[item["article_id"]] = item
        after = page["next_after"]
        if not running and not page["items"]:
            break
    loader.join()
    assert errors == []
    assert revisions == sorted(set(revisions))  # strictly increasing: nothing repeated
    with engine.connect() as c:
        stored = {r.article_id: r for r in c.execute(select(models.article_table))}
    assert set(seen) == set(stored)  # nothing missed
    for article_id, row in stored.items():
        assert seen[article_id]["content"] == row.content
        assert seen[article_id]["revision"] == row.revision


async def test_a_mirror_following_the_feed_during_ingests_and_takedowns_ends_equal(
    client: httpx.AsyncClient, engine: Engine, tmp_path: Path
) -> None:
    add_articles(engine, [record(i) for i in range(1, 301)])
    path = tmp_path / "load.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(record(i)) for i in range(301, 901)))
    errors: list[object] = []

    def take_down() -> None:
        try:
            for article_id in [*range(1, 301, 3), *range(320, 901, 40)]:
                takedowns.delete_articles(engine, [article_id])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    writers = [loading(path, engine, errors), threading.Thread(target=take_down)]
    mirror: dict[int, dict[str, Any]] = {}
    revisions: list[int] = []
    after = 0
    for writer in writers:
        writer.start()
    while True:
        running = any(writer.is_alive() for writer in writers)
        page = await changes(client, after=after, limit=40)
        for item in page["items"]:
            revisions.append(item["revision"])
            if item["deleted"]:
                mirror.pop(item["article_id"], None)
            else:
                mirror[item["article_id"]] = item
        after = page["next_after"]
        if not running and not page["items"]:
            break
    for writer in writers:
        writer.join()
    assert errors == []
    assert revisions == sorted(set(revisions))
    with engine.connect() as c:
        stored = {r.article_id: r.revision for r in c.execute(select(models.article_table))}
    # An id taken down before the load reached it was suppressed: never in the mirror.
    assert {i: item["revision"] for i, item in mirror.items()} == stored
    assert len(stored) < 900
