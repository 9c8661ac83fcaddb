"""On PostgreSQL the single reads of the hottest routes (a list page, a detail, the data
revision, a source's probe) run on the event loop, awaiting the database through the loop's
own engine (app/db.py, app/queries/prepared.py): no thread hop. They must answer as the
threaded reads do, see each committed write at once, give every connection back, keep the
statement timeout, and survive connections a restart left stale."""

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session

from app.api.articles import INLINE_BODY_BYTES
from app.db import make_engine, make_loop_engine, shares_session
from app.models import article_table
from app.queries.articles import find_small_article_fields, get_article_fields
from app.queries.prepared import Prepared, loop_engine_of, on_loop
from app.settings import Settings
from tests.databases import pg_admin, terminate_connections
from tests.factories import add_articles, make_client, record, write_articles
from tests.pgbouncer import PgBouncer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def loop_engine(pg_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_loop_engine(Settings(database_url=pg_database_url))
    assert engine is not None
    yield engine
    await engine.dispose()


def test_sqlite_has_no_loop_engine() -> None:
    assert make_loop_engine(Settings(database_url="sqlite:///unused.db")) is None


async def test_the_hot_reads_run_on_the_loop_and_see_each_write(pg_database_url: str) -> None:
    async with make_client(pg_database_url) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        engine = app.state.engine
        add_articles(engine, [record(11, title="First", source_id=3)])
        assert (await client.get("/v1/articles/11")).json()["title"] == "First"
        add_articles(engine, [record(11, title="Second", source_id=3), record(12, source_id=3)])
        assert (await client.get("/v1/articles/11")).json()["title"] == "Second"
        page = (await client.get("/v1/articles", params={"limit": 1})).json()
        assert [item["article_id"] for item in page["items"]] == [12]
        nxt = (await client.get(page["next"])).json()
        assert [item["article_id"] for item in nxt["items"]] == [11]
        listed = (await client.get("/v1/sources/3/articles")).json()
        assert [item["article_id"] for item in listed["items"]] == [12, 11]
        assert (await client.get("/v1/sources/4/articles")).status_code == 404
        assert (await client.get("/v1/articles/13")).status_code == 404
        # A body over what a read on the loop brings is read whole on a thread.
        large = "words " * (INLINE_BODY_BYTES // 6 + 10)
        add_articles(engine, [record(14, content=large), record(15, content="é" * 40_000)])
        assert (await client.get("/v1/articles/14")).json()["content"] == large
        assert (await client.get("/v1/articles/15")).json()["content"] == "é" * 40_000
        with Session(engine) as session:  # bytes, not characters, bound what the loop reads
            for article_id in (14, 15):
                found = find_small_article_fields(session, article_id, INLINE_BODY_BYTES)
                assert found is not None
                assert found["content"] is None
            small = find_small_article_fields(session, 12, INLINE_BODY_BYTES)
            assert small is not None
            assert small["content"] == record(12)["content"]
        # The loop's own pool served them, and has every connection back.
        loop_engine = loop_engine_of(Session(engine))
        assert loop_engine is not None
        assert loop_engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert loop_engine.sync_engine.pool.checkedin() >= 1  # type: ignore[attr-defined]


async def test_a_read_on_the_loop_runs_on_the_loops_thread(
    pg_database_url: str, loop_engine: AsyncEngine
) -> None:
    write_articles(pg_database_url, [record(21, title="Here")])
    engine = make_engine(Settings(database_url=pg_database_url))

    def read() -> tuple[str, threading.Thread]:
        with Session(engine) as session:
            return get_article_fields(session, 21)["title"], threading.current_thread()

    title, thread = await on_loop(loop_engine, read)
    assert (title, thread) == ("Here", threading.current_thread())
    assert loop_engine.sync_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    engine.dispose()


@pytest.mark.parametrize("pooled", [False, True], ids=["direct", "through the pooler"])
async def test_reads_on_the_loop_keep_the_statement_timeout(
    pg_database_url: str, pgbouncer: PgBouncer, pooled: bool
) -> None:
    url = pgbouncer.url(pg_database_url) if pooled else pg_database_url
    settings = Settings(database_url=url, statement_timeout_ms=100)
    engine, loop_engine = make_engine(settings), make_loop_engine(settings)
    assert loop_engine is not None
    slow = Prepared.of(select(func.pg_sleep(2)), engine.dialect)
    now = Prepared.of(select(func.pg_backend_pid()), engine.dialect)

    def sleep() -> object:
        with Session(engine) as session:
            return slow.rows(session, {})

    def many() -> set[bool]:  # past psycopg's five runs before it prepares a statement
        with Session(engine) as session:
            return {bool(now.rows(session, {})) for _ in range(12)}

    try:
        with pytest.raises(OperationalError, match="statement timeout"):
            await on_loop(loop_engine, sleep)
        assert await on_loop(loop_engine, many) == {True}
        async with loop_engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert shares_session(raw.info) is pooled
    finally:
        await loop_engine.dispose()
        engine.dispose()


@pytest.mark.parametrize("pooled", [False, True], ids=["direct", "through the pooler"])
async def test_dates_come_back_in_utc_whatever_the_server_s_time_zone(
    pg_database_url: str, pgbouncer: PgBouncer, pooled: bool
) -> None:
    """Our own sessions run in UTC, so psycopg's dates pass as they come; through a pooler
    the session keeps the server's zone, and the dates are converted instead."""
    name = make_url(pg_database_url).database
    pg_admin(f"ALTER DATABASE \"{name}\" SET TimeZone = 'Asia/Kathmandu'")  # +05:45
    published = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    write_articles(pg_database_url, [record(31, published_at=published.isoformat())])
    url = pgbouncer.url(pg_database_url) if pooled else pg_database_url
    settings = Settings(database_url=url)
    engine, loop_engine = make_engine(settings), make_loop_engine(settings)
    assert loop_engine is not None
    when = select(article_table.c.published_at).where(article_table.c.article_id == 31)
    dated = Prepared.of(when, engine.dialect)

    def read() -> object:
        with Session(engine) as session:
            return dated.rows(session, {})[0][0]

    try:
        for got in (await on_loop(loop_engine, read), await asyncio.to_thread(read)):
            assert got == published
            assert isinstance(got, datetime)
            assert got.tzinfo is UTC
        with engine.connect() as connection:
            zone = connection.exec_driver_sql("SHOW TimeZone").scalar()
        assert zone == ("Asia/Kathmandu" if pooled else "UTC")
    finally:
        await loop_engine.dispose()
        engine.dispose()


async def test_reads_on_the_loop_drop_connections_a_restart_left_stale(
    pg_database_url: str, loop_engine: AsyncEngine
) -> None:
    engine = make_engine(Settings(database_url=pg_database_url))
    add_articles(engine, [record(31, title="Survives")])

    def read() -> str:
        with Session(engine) as session:
            title: str = get_article_fields(session, 31)["title"]
            return title

    # Four idle connections in the loop's pool, as a busy server's would hold.
    async with (
        loop_engine.connect() as a,
        loop_engine.connect() as b,
        loop_engine.connect() as c,
        loop_engine.connect() as d,
    ):
        for idle in (a, b, c, d):
            await idle.exec_driver_sql("SELECT 1")
    killed = terminate_connections(pg_database_url)
    assert killed >= 4
    assert await on_loop(loop_engine, read) == "Survives"  # no error reaches the caller
    assert await on_loop(loop_engine, read) == "Survives"
    engine.dispose()


async def test_a_read_cancelled_on_the_loop_leaves_the_pool_fit_for_the_next(
    pg_database_url: str, loop_engine: AsyncEngine
) -> None:
    engine = make_engine(Settings(database_url=pg_database_url))
    slow = Prepared.of(select(func.pg_sleep(2)), engine.dialect)
    now = Prepared.of(select(func.pg_backend_pid()), engine.dialect)

    def read(statement: Prepared) -> object:
        with Session(engine) as session:
            return statement.rows(session, {})

    task = asyncio.create_task(on_loop(loop_engine, lambda: read(slow)))
    await asyncio.sleep(0.3)  # the statement is on the server by now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool = loop_engine.sync_engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    for _ in range(3):  # whichever connection the pool hands out next answers
        assert await on_loop(loop_engine, lambda: read(now))
    engine.dispose()
