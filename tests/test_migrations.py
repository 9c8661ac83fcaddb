"""Alembic is the only way the schema changes: upgrade, downgrade and drift, on both backends."""

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from app import models
from app.db import SQLITE_PAGE_SIZE, backend, downgrade, make_engine, migrate
from app.settings import Settings


def _tables(url: str) -> set[str]:
    engine = make_engine(Settings(database_url=url), pooled=False)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    assert {"article", "source"} <= _tables(database_url)
    downgrade(database_url, "base")
    assert _tables(database_url) <= {"alembic_version"}
    migrate(database_url)
    assert {"article", "source"} <= _tables(database_url)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": _ours}
            )
            diff = compare_metadata(context, models.metadata)
    finally:
        engine.dispose()
    assert diff == []


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (type_ == "table" and name == "alembic_version") and (
        name not in models.MANUAL_OBJECTS
    )


def test_0002_backfills_rows_loaded_before_it(database_url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    downgrade(database_url, "0001")
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    now = datetime.now(UTC)
    try:
        with engine.begin() as c:
            c.execute(text("INSERT INTO source (source_id) VALUES (2)"))
            for article_id, content in ((5, "one two  three"), (3, "alpha beta")):
                c.execute(
                    text(
                        "INSERT INTO article (article_id, source_id, title, content, "
                        "content_hash, ingested_at, updated_at) "
                        "VALUES (:id, 2, 'Palmyra news', :content, 'h', :now, :now)"
                    ),
                    {"id": article_id, "content": content, "now": now},
                )
        migrate(database_url, "0005")  # the last revision with search in the database
        with engine.connect() as c:
            rows = c.execute(
                text("SELECT article_id, word_count, revision FROM article ORDER BY article_id")
            ).all()
            assert [tuple(r) for r in rows] == [(3, 2, 1), (5, 3, 2)]
            if engine.dialect.name == "sqlite":
                hits = c.execute(
                    text("SELECT rowid FROM article_fts WHERE article_fts MATCH 'alpha'")
                ).scalars()
            else:
                hits = c.execute(
                    text(
                        "SELECT article_id FROM article "
                        "WHERE search_vector @@ websearch_to_tsquery('english', 'alpha')"
                    )
                ).scalars()
            assert list(hits) == [3]
    finally:
        engine.dispose()


def test_0003_stores_the_excerpt_of_rows_loaded_before_it(database_url: str) -> None:
    from sqlalchemy import text

    from app.text import excerpt
    from tests.factories import add_articles, record

    long_body = "word " * 100 + "x" * 300
    bodies = {1: "short body", 2: long_body, 3: "y" * 500, 4: "naïve café " * 40}
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        add_articles(engine, [record(i, content=body) for i, body in bodies.items()])
        downgrade(database_url, "0002")
        migrate(database_url, "0005")
        with engine.connect() as c:
            found = c.execute(text("SELECT article_id, excerpt FROM article")).all()
            stored: dict[int, str] = dict(found)
            triggers = 3
            if engine.dialect.name == "sqlite":
                listed = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                triggers = c.execute(text(listed)).scalar_one()
    finally:
        engine.dispose()
    assert stored == {i: excerpt(body) for i, body in bodies.items()}
    assert stored[1] == "short body"
    assert stored[2].endswith("word…")
    assert stored[3].endswith("…")
    assert triggers == 3  # the downgrade dropped the column, not the full-text triggers


def test_0004_compresses_large_postgresql_values_with_lz4(database_url: str) -> None:
    from sqlalchemy import text

    from app.ingest.stores import PostgresStore
    from tests.factories import add_articles, record

    if backend(database_url) != "postgresql":
        pytest.skip("SQLite does not compress values")
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    listed = text(
        "SELECT attname, attcompression FROM pg_attribute"
        " WHERE attrelid = CAST(:table AS regclass) AND attname = ANY(:names)"
    )
    names = ["content", "extra", "search_vector"]
    try:
        with engine.connect() as c:
            after: dict[str, str] = dict(
                c.execute(listed, {"table": "article", "names": names}).all()
            )
            c.commit()
            store = PostgresStore(c)
            with c.begin():
                store.stage(c, [])  # makes the session's staging table, compressed as `article`
                staged: dict[str, str] = dict(
                    c.execute(listed, {"table": "article_stage", "names": names}).all()
                )
        body = "lz4 " * 2000  # past the TOAST threshold: stored compressed
        add_articles(engine, [record(1, content=body)])
        downgrade(database_url, "0003")
        with engine.connect() as c:
            before: dict[str, str] = dict(
                c.execute(listed, {"table": "article", "names": names}).all()
            )
            kept = c.execute(text("SELECT content FROM article")).scalar_one()
        migrate(database_url)
    finally:
        engine.dispose()
    assert after == {"content": "l", "extra": "l"}  # 0006 dropped search_vector
    assert staged == {"content": "l", "extra": "l"}
    assert before == {"content": "", "extra": "", "search_vector": ""}
    assert kept == body  # values written as LZ4 read back after the downgrade


def test_0005_keeps_vectors_and_its_downgrade_makes_the_column_generated_again(
    database_url: str,
) -> None:
    from sqlalchemy import text

    if backend(database_url) != "postgresql":
        pytest.skip("PostgreSQL's search vector")
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    state = text(
        "SELECT attgenerated FROM pg_attribute"
        " WHERE attrelid = 'article'::regclass AND attname = 'search_vector'"
    )
    vector = text("SELECT search_vector::text FROM article WHERE article_id = 1")
    indexes = text("SELECT indexname FROM pg_indexes WHERE tablename = 'article'")
    try:
        downgrade(database_url, "0005")
        # Written by hand: today's writer expects today's schema (takedowns, from 0007).
        with engine.begin() as c:
            c.execute(text("INSERT INTO source (source_id) VALUES (2)"))
            c.execute(
                text(
                    "INSERT INTO article (article_id, source_id, title, content, word_count,"
                    " excerpt, revision, content_hash, ingested_at, updated_at) VALUES (1, 2,"
                    " 'Running dogs', 'geese flying', 2, 'geese flying', 1, 'h', now(), now())"
                )
            )
        with engine.connect() as c:
            c.execute(text("DROP INDEX ix_article_title_article_id"))  # as a killed load left it
            c.commit()
            loaded = c.execute(vector).scalar_one()
        downgrade(database_url, "0004")
        with engine.connect() as c:
            generated = c.execute(state).scalar_one()
            recomputed = c.execute(vector).scalar_one()
            indexed = set(c.execute(indexes).scalars())
        migrate(database_url, "0005")
        with engine.connect() as c:
            upgraded = c.execute(state).scalar_one()
            kept = c.execute(vector).scalar_one()
    finally:
        engine.dispose()
    assert loaded == "'dog':2A 'fli':4B 'gees':3B 'run':1A"
    assert (generated, recomputed) == ("s", loaded)
    assert {"ix_article_search_vector", "ix_article_title_article_id"} <= indexed
    assert (upgraded, kept) == ("", loaded)


def test_0006_moves_search_out_and_its_downgrade_brings_it_back(database_url: str) -> None:
    from sqlalchemy import text

    from tests.factories import add_articles, record

    engine = make_engine(Settings(database_url=database_url), pooled=False)
    sqlite = backend(database_url) == "sqlite"
    search = (
        text("SELECT rowid FROM article_fts WHERE article_fts MATCH 'geese'")
        if sqlite
        else text(
            "SELECT article_id FROM article"
            " WHERE search_vector @@ websearch_to_tsquery('english', 'geese')"
        )
    )
    listed = (
        "SELECT name FROM sqlite_master WHERE name LIKE 'article_fts%'"
        if sqlite
        else "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'article' AND column_name = 'search_vector'"
    )
    try:
        with engine.connect() as c:
            database_id = c.execute(
                text("SELECT value FROM corpus_meta WHERE key = 'database_id'")
            ).scalar_one()
            at_head = c.execute(text(listed)).scalars().all()
        add_articles(engine, [record(1, title="Running dogs", content="geese flying")])
        downgrade(database_url, "0005")
        with engine.connect() as c:
            found = c.execute(search).scalars().all()  # filled from the stored rows
        migrate(database_url)
        with engine.connect() as c:
            again = c.execute(text(listed)).scalars().all()
            new_id = c.execute(
                text("SELECT value FROM corpus_meta WHERE key = 'database_id'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert at_head == again == []
    assert found == [1]
    assert len(database_id) == 32
    assert new_id != database_id  # an upgrade names the database anew: indexes are rebuilt


def test_0007_adds_takedowns_and_its_downgrade_drops_them(database_url: str) -> None:
    from app import takedowns
    from tests.factories import add_articles, record

    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        add_articles(engine, [record(1), record(2)])
        assert takedowns.delete_articles(engine, [2]).done == [2]
        downgrade(database_url, "0006")
        assert "takedown" not in _tables(database_url)
        with engine.connect() as c:  # the deleted article stays deleted
            ids = c.execute(select(models.article_table.c.article_id)).scalars().all()
        assert ids == [1]
        migrate(database_url)
        assert "takedown" in _tables(database_url)
        with engine.connect() as c:
            assert c.execute(select(models.takedown_table)).all() == []
        assert takedowns.delete_articles(engine, [1]).done == [1]
    finally:
        engine.dispose()


def test_a_new_sqlite_database_gets_large_pages_and_an_old_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as made_elsewhere:
        made_elsewhere.execute("CREATE TABLE t (a)")  # 4 KB pages: sqlite3's default
    for path in (new, old):
        migrate(f"sqlite:///{path}")
    for path, pages in ((new, SQLITE_PAGE_SIZE), (old, 4096)):
        with closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA page_size").fetchone() == (pages,), path
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",), path
