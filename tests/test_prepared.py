"""Single statements run outside the Session (app/queries/prepared.py): on SQLite on a
connection each thread keeps, elsewhere straight from the pool. Either way a read must see
every committed write at once, hold no pool slot afterwards, and close with the engine."""

import sqlite3

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.errors import NotFound
from app.queries import prepared
from app.queries.articles import get_article_fields
from app.queries.cache import newest_revision
from tests.databases import terminate_connections
from tests.factories import add_articles, record


def read_title(engine: Engine, article_id: int) -> str:
    with Session(engine) as session:
        title: str = get_article_fields(session, article_id)["title"]
        return title


def test_single_reads_see_each_committed_write_at_once(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(NotFound):
        get_article_fields(session, 71)
    add_articles(engine, [record(71, title="First")])
    assert read_title(engine, 71) == "First"
    add_articles(engine, [record(71, title="Second")])
    assert read_title(engine, 71) == "Second"
    with Session(engine) as session:
        assert newest_revision(session) == 2
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_sqlite_keeps_one_reader_per_thread_and_closes_it_with_the_engine(
    engine: Engine, db_backend: str
) -> None:
    if db_backend != "sqlite":
        pytest.skip("SQLite only: PostgreSQL reads check a connection out of the pool")
    add_articles(engine, [record(72, title="Kept")])
    assert read_title(engine, 72) == "Kept"
    kept = prepared._KEPT[engine]
    (connection,) = kept.opened
    assert read_title(engine, 72) == "Kept"
    assert kept.opened == [connection]  # the same one, not a new connection per read
    engine.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        connection.execute("SELECT 1")  # closed with the engine
    assert read_title(engine, 72) == "Kept"  # and a fresh one opens on the next read
    assert len(kept.opened) == 1
    assert kept.opened[0] is not connection


def test_postgresql_single_reads_drop_connections_a_restart_left_stale(
    engine: Engine, db_backend: str, database_url: str
) -> None:
    if db_backend != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no server to restart")
    add_articles(engine, [record(73, title="Survives")])
    # Fill the pool with idle connections, as a busy server's would be.
    sessions = [Session(engine) for _ in range(4)]
    for session in sessions:
        session.connection()
    for session in sessions:
        session.close()
    assert engine.pool.checkedin() >= 4  # type: ignore[attr-defined]
    killed = terminate_connections(database_url)
    assert killed >= 4
    assert read_title(engine, 73) == "Survives"  # no error reaches the caller
    assert read_title(engine, 73) == "Survives"
