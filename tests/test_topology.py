"""The deployment of docs/topology.md, small, on this machine: two API hosts with their own
workers and index folders, one on the primary through PgBouncer, one on a streaming
replica (its writes to the primary through PgBouncer), both following the database, both
counting rate limits in one Redis. What an operator does on the primary (an ingest, a
takedown, a key revoked) reaches both hosts within 5 s."""

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from typer.testing import CliRunner

from app.cli import cli
from tests.factories import record, write_articles
from tests.live import LiveServer, serve, wait_for_search
from tests.pgbouncer import PgBouncer
from tests.replica import Replica
from tests.test_keys_live import REDIS_URL

WITHIN_S = 5.0  # what the issue promises for a change on the primary to reach every host


def corpus(*args: str) -> str:
    """A `corpus` command, as an operator runs it against the primary; its stdout."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def within(hosts: list[LiveServer], check: Callable[[LiveServer], bool], what: str) -> None:
    """`check` holds on every host within WITHIN_S of now."""
    started = time.monotonic()
    for host in hosts:
        while not check(host):
            assert time.monotonic() - started < WITHIN_S, f"{what}: not on {host.url} in time"
            time.sleep(0.05)


def test_two_hosts_on_the_primary_and_a_replica_see_what_operators_do_on_the_primary(
    pg_database_url: str, pgbouncer: PgBouncer, replica: Replica, tmp_path: Path
) -> None:
    write_articles(
        pg_database_url, [record(i, title=f"Heron {i}", content="a grey heron") for i in (1, 2)]
    )
    primary = pgbouncer.url(pg_database_url)  # how operators and host A reach it
    db = ("--database-url", primary)
    key = orjson.loads(corpus("keys", "create", "--name", "reader", "--json", *db))["key"]
    scarce = orjson.loads(
        corpus("keys", "create", "--name", "scarce", "--rate", "6/minute", "--json", *db)
    )["key"]
    replica.caught_up(pg_database_url)
    shared = {"CORPUS_AUTH": "keys", "CORPUS_REDIS_URL": REDIS_URL, "CORPUS_INDEX_POLL_S": "0.2"}
    host_a = {**shared, "CORPUS_INDEX_DIR": str(tmp_path / "host-a")}
    host_b = {
        **shared,
        "CORPUS_INDEX_DIR": str(tmp_path / "host-b"),
        "CORPUS_PRIMARY_DATABASE_URL": primary,
    }
    with (
        serve(primary, workers=2, env=host_a) as a,
        serve(replica.url(pg_database_url), workers=2, env=host_b) as b,
    ):
        hosts = [a, b]
        for host in hosts:
            wait_for_search(host)
        ready_b = httpx.get(f"{b.url}/readyz").json()
        assert ready_b["database"]["replica"] is True

        def get(host: LiveServer, path: str, with_key: str = key) -> httpx.Response:
            return httpx.get(f"{host.url}{path}", headers={"X-API-Key": with_key})

        def ids(host: LiveServer, query: str = "") -> list[int]:
            page = get(host, f"/v1/articles{query}").json()
            return [item["article_id"] for item in page["items"]]

        # An ingest on the primary: in both hosts' lists and searches.
        new = tmp_path / "new.jsonl"
        new.write_text('{"article_id": 3, "source_id": 2, "title": "Pangolin", "content": "x"}\n')
        corpus("ingest", "--quiet", str(new), *db, "--index-dir", str(tmp_path / "operator"))
        within(hosts, lambda h: ids(h)[:1] == [3] and ids(h, "?q=pangolin") == [3], "ingest")

        # A takedown on the primary: gone from both hosts' lists, searches and details.
        corpus("delete", "1", *db, "--index-dir", str(tmp_path / "operator"))
        within(
            hosts,
            lambda h: 1 not in ids(h) and ids(h, "?q=heron") == [2],
            "takedown",
        )
        assert {get(host, "/v1/articles/1").status_code for host in hosts} == {410}

        # One rate budget for a key across both hosts: Redis counts for all of them.
        answers = [get(hosts[n % 2], "/v1/sources", scarce).status_code for n in range(12)]
        assert (answers.count(200), answers.count(429)) == (6, 6)

        # A key revoked on the primary: refused by both hosts.
        prefix = key.split("_")[1]
        corpus("keys", "revoke", prefix, *db)
        within(hosts, lambda h: get(h, "/v1/articles").status_code == 401, "revocation")
        logs = [host.log_text() for host in hosts]
    # Host B's usage counts went to the primary: both hosts' requests are counted there.
    listed = orjson.loads(corpus("keys", "list", "--json", *db))
    totals = {row["name"]: row["total"] for row in listed}
    assert totals["scarce"] == 6
    assert totals["reader"] > 0
    for log in logs:
        assert "Traceback" not in log
        assert "read-only replica" not in log
