"""Through PgBouncer in transaction mode (tests/pgbouncer.py), with nothing but the URL
changed: every command, concurrent loads, and `corpus serve` with two workers under
concurrent requests. The pooler runs each transaction on whichever of a few server
sessions is next, so anything that leans on a session (prepared statements, SET, temporary
tables, session locks) fails here."""

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from typer.testing import CliRunner, Result

from app import models, synth
from app.cli import cli
from app.db import make_engine, shares_session
from app.queries.prepared import Prepared
from app.settings import Settings
from tests.databases import pg_admin, pg_url
from tests.factories import CORPUS_IDS, corpus_records, write_articles
from tests.live import serve, wait_for_search
from tests.pgbouncer import PgBouncer
from tests.test_ingest_concurrent import finish, start
from tests.test_ingest_scale import SMALL_BODIES, count

READY_WITHIN_S = 20.0


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Result) -> Any:
    return orjson.loads(result.stdout)


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A database with no schema yet: `corpus migrate` makes it."""
    name = f"corpus_t_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_command_works_through_the_pooler(
    empty_url: str, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    url = pgbouncer.url(empty_url)
    db = ("--database-url", url)
    index = ("--index-dir", str(tmp_path / "index"))
    run("migrate", *db)
    data = tmp_path / "articles.jsonl"
    synth.write(data, 3_000, seed=11, body_chars=SMALL_BODIES)
    # Small batches: many transactions, each statement run far more than five times.
    load = ("ingest", "--quiet", "--json", "--batch-size", "100", str(data), *db, *index)
    assert as_json(run(*load))["inserted"] == 3_000
    assert as_json(run(*load))["unchanged"] == 3_000
    assert as_json(run("delete", "1", "2", "3", "--json", *db, *index))["deleted"] == 3
    assert as_json(run("restore", "2", "--json", *db))["restored"] == 1
    prefix = as_json(run("keys", "create", "--name", "pooled", "--json", *db))["prefix"]
    run("keys", "revoke", prefix, *db)
    (key,) = as_json(run("keys", "list", "--json", *db))
    assert (key["prefix"], key["state"]) == (prefix, "revoked")
    status = as_json(run("index", "status", "--json", *db, *index))
    assert (status["state"], status["lag"], status["revision"]) == ("ready", 0, 3_003)
    run("index", "rebuild", *db, *index)
    snapshot = as_json(run("index", "snapshot", str(tmp_path / "copy"), "--json", *db, *index))
    assert snapshot["revision"] == 3_003
    exported = run("export", *db).stdout.splitlines()
    assert len(exported) == 2_997
    assert {orjson.loads(line)["article_id"] for line in exported} == set(range(4, 3_001))


def test_loads_through_the_pooler_wait_for_each_other_and_lose_nothing(
    pg_database_url: str, pgbouncer: PgBouncer, tmp_path: Path
) -> None:
    url = pgbouncer.url(pg_database_url)
    files = [tmp_path / f"{n}.jsonl" for n in range(3)]
    for n, (path, first_id) in enumerate(zip(files, (1, 1_501, 3_001), strict=True)):
        synth.write(path, 3_000, seed=20 + n, first_id=first_id, body_chars=SMALL_BODIES)
    loads = [(250, files[0]), (300, files[1]), (200, files[2])]
    finish([start(["--batch-size", str(size), str(path)], url) for size, path in loads])
    engine = make_engine(Settings(database_url=pg_database_url), pooled=False)
    article = models.article_table
    with engine.connect() as c:
        ids = c.execute(select(article.c.article_id).order_by(article.c.article_id)).scalars()
        assert list(ids) == list(range(1, 6_001))
        # One writer at a time numbers revisions: no two rows share one.
        revisions = c.execute(select(func.count(func.distinct(article.c.revision)))).scalar()
    assert revisions == count(engine) == 6_000
    engine.dispose()


# Lists and details, each asked many times over the same few connections: where psycopg
# would prepare statements on the server (as it did, answering about one in ten with a 500).
READS = [
    "/v1/articles",
    "/v1/articles?limit=5&source_id=2",
    f"/v1/articles/{CORPUS_IDS[7]}",
    f"/v1/articles/{CORPUS_IDS[40]}",
]
# And once each, what else reads the database.
OTHERS = [
    "/v1/articles?sort=title&limit=3",
    "/v1/articles?q=title&count=exact",
    "/v1/sources",
    "/v1/sources/5/articles",
    "/v1/changes?after=0&limit=50",
    "/readyz",
]


def test_serve_with_two_workers_through_the_pooler_answers_every_request(
    pg_database_url: str, pgbouncer: PgBouncer
) -> None:
    write_articles(pg_database_url, corpus_records())
    with serve(pgbouncer.url(pg_database_url), workers=2) as server:
        wait_for_search(server, READY_WITHIN_S)

        # Four connections at once, which the kernel spreads over both workers.
        with httpx.Client(base_url=server.url) as client, ThreadPoolExecutor(4) as pool:
            answers = pool.map(lambda path: client.get(path).status_code, READS * 100 + OTHERS)
            statuses = Counter(answers)
        log = server.log_text()
    assert statuses == Counter({200: 406}), log
    assert "Traceback" not in log


@pytest.mark.parametrize("pooled", [False, True], ids=["direct", "through the pooler"])
def test_the_statement_timeout_bounds_every_statement_either_way(
    pg_database_url: str, pgbouncer: PgBouncer, pooled: bool
) -> None:
    url = pgbouncer.url(pg_database_url) if pooled else pg_database_url
    engine = make_engine(Settings(database_url=url, statement_timeout_ms=100))
    slow = select(func.pg_sleep(2))
    with engine.connect() as connection:
        assert shares_session(connection.info) is pooled
        with pytest.raises(OperationalError, match="statement timeout"):
            connection.execute(slow)
    # The single statements that skip the Session (app/queries/prepared.py) too.
    with Session(engine) as session, pytest.raises(OperationalError, match="statement timeout"):
        Prepared.of(slow, engine.dialect).rows(session, {})
    engine.dispose()
    # A command's engine runs unbounded, in the same server sessions: nothing was left set.
    unbounded = make_engine(Settings(database_url=url, statement_timeout_ms=0), pooled=False)
    with unbounded.connect() as connection:
        connection.execute(select(func.pg_sleep(0.3)))
    unbounded.dispose()
