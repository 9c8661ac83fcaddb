"""An API host on a streaming replica (tests/replica.py): it reads, follows its search index
and serves the change feed there; the API's own writes (key usage counts) go to the
primary when CORPUS_PRIMARY_DATABASE_URL names it, and are skipped with one warning when
not, never a 500; /readyz says the database is a replica, and how far behind."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import httpx
import pytest

from app.db import make_engine
from app.settings import Settings
from tests.databases import PG_ADMIN_URL, pg_scalar
from tests.factories import add_articles, make_client, record
from tests.replica import Replica
from tests.test_keys import keys, new_key

pytestmark = pytest.mark.anyio
USAGE_WITHIN_S = 5.0


@pytest.fixture
def primary_url(pg_database_url: str, replica: Replica) -> str:
    """A database on the primary with five herons, replayed on the replica."""
    engine = make_engine(Settings(database_url=pg_database_url), pooled=False)
    add_articles(
        engine, [record(i, title=f"Heron {i}", content="a grey heron") for i in range(1, 6)]
    )
    engine.dispose()
    replica.caught_up(pg_database_url)
    return pg_database_url


async def test_a_host_on_a_replica_reads_searches_and_follows_the_change_feed(
    primary_url: str, replica: Replica
) -> None:
    async with make_client(replica.url(primary_url)) as client:
        listed = (await client.get("/v1/articles")).json()
        found = (await client.get("/v1/articles", params={"q": "heron"})).json()
        changes = (await client.get("/v1/changes")).json()
        ready = (await client.get("/readyz")).json()
    assert [item["article_id"] for item in listed["items"]] == [5, 4, 3, 2, 1]
    assert sorted(item["article_id"] for item in found["items"]) == [1, 2, 3, 4, 5]
    assert [change["revision"] for change in changes["items"]] == [1, 2, 3, 4, 5]
    # The suite's server is shared: what else it writes may be arriving just now.
    assert ready["database"]["replica"] is True
    assert 0 <= ready["database"]["lag_s"] < 1
    assert ready["search_index"]["state"] == "ready"
    async with make_client(primary_url) as client:
        assert (await client.get("/readyz")).json()["database"] == {
            "replica": False,
            "lag_s": None,
        }


def usage(primary_url: str) -> int:
    (key,) = keys(primary_url, "list")
    total: int = key["total"]
    return total


async def test_a_replica_host_writes_key_usage_to_the_primary(
    primary_url: str, replica: Replica
) -> None:
    key = new_key(primary_url)
    replica.caught_up(primary_url)
    async with make_client(
        replica.url(primary_url),
        auth="keys",
        primary_database_url=primary_url,
        usage_flush_s=0.05,
    ) as client:
        for _ in range(3):
            response = await client.get("/v1/articles/1", headers={"X-API-Key": key})
            assert response.status_code == 200
        deadline = time.monotonic() + USAGE_WITHIN_S
        while usage(primary_url) < 3:
            assert time.monotonic() < deadline, "usage never reached the primary"
            await anyio.sleep(0.05)
    assert usage(primary_url) == 3


async def test_without_a_primary_a_replica_host_skips_usage_with_one_warning(
    primary_url: str, replica: Replica, capsys: pytest.CaptureFixture[str]
) -> None:
    key = new_key(primary_url)
    replica.caught_up(primary_url)
    async with make_client(replica.url(primary_url), auth="keys", usage_flush_s=0.02) as client:
        statuses = []
        for _ in range(10):
            response = await client.get("/v1/articles", headers={"X-API-Key": key})
            statuses.append(response.status_code)
            await anyio.sleep(0.03)  # a flush, refused, after each request
    assert statuses == [200] * 10
    log = capsys.readouterr().err
    assert log.count("read-only replica") == 1, log
    assert "CORPUS_PRIMARY_DATABASE_URL" in log
    assert usage(primary_url) == 0


@contextmanager
def pause_replay(replica: Replica) -> Iterator[None]:
    """The replica's replay paused (WAL still arrives) until the block ends."""
    admin = replica.url(PG_ADMIN_URL)
    pg_scalar(admin, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        pg_scalar(admin, "SELECT pg_wal_replay_resume()")


async def test_readiness_reports_a_lagging_replica_and_fails_past_the_set_limit(
    primary_url: str, replica: Replica
) -> None:
    url = replica.url(primary_url)
    async with make_client(url, replica_max_lag_s=1.0) as strict, make_client(url) as lenient:
        assert (await strict.get("/readyz")).status_code == 200
        with pause_replay(replica):
            engine = make_engine(Settings(database_url=primary_url), pooled=False)
            add_articles(engine, [record(6)])  # arrives, is not applied
            engine.dispose()
            lag_s = await lag_beyond(lenient, 1.2)
            refused = await strict.get("/readyz")
        assert lag_s > 1.2
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("The database is a replica")
        replica.caught_up(primary_url)
        assert (await strict.get("/readyz")).status_code == 200


async def lag_beyond(client: httpx.AsyncClient, limit_s: float) -> float:
    """The lag /readyz reports, once it exceeds `limit_s`."""
    deadline = time.monotonic() + USAGE_WITHIN_S
    while True:
        lag_s = (await client.get("/readyz")).json()["database"]["lag_s"]
        if lag_s is not None and lag_s > limit_s:
            return float(lag_s)
        assert time.monotonic() < deadline, f"the lag stayed at {lag_s}"
        await anyio.sleep(0.05)
