"""The writer's ordering promises across batches: revisions in order, nothing after a failed
batch, everything before it."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from app import models
from app.ingest.pipeline import ingest
from app.ingest.records import ArticleIn
from app.ingest.writer import BatchCounts, write_batches
from tests.factories import add_articles, article_in, record
from tests.test_ingest import write_jsonl


def _stored(engine: Engine) -> dict[int, tuple[str, int]]:
    """title and revision by article_id."""
    article = models.article_table
    with engine.connect() as c:
        found = c.execute(select(article.c.article_id, article.c.title, article.c.revision))
        return {i: (title, revision) for i, title, revision in found}


def test_batches_commit_in_input_order_so_the_last_copy_wins(
    engine: Engine, tmp_path: Path
) -> None:
    # Batches of 2: id 1 comes back in the second and in the fourth; on PostgreSQL those
    # two batches are written by the two connections in turn.
    titles = ["a", "b", "c", "d", "e", "f", "g"]
    ids = [1, 2, 1, 3, 4, 5, 1]
    path = write_jsonl(
        tmp_path / "a.jsonl", [record(i, title=t) for i, t in zip(ids, titles, strict=True)]
    )
    summary = ingest([path], engine, batch_size=2, on_reject=print, child_reader=False)
    assert (summary.inserted, summary.updated) == (5, 2)
    stored = _stored(engine)
    assert stored[1][0] == "g"
    # Revisions follow the input: each row's last write is numbered after the others'.
    order = sorted(stored, key=lambda i: stored[i][1])
    assert order == [2, 3, 4, 5, 1]
    assert sorted(r for _, r in stored.values()) == [2, 4, 5, 6, 7]  # 1 and 3: id 1, rewritten


def test_a_failing_batch_stops_the_batches_after_it(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a trigger that raises: the PostgreSQL writer's two connections")
    with engine.begin() as c:
        c.execute(
            text(
                "CREATE FUNCTION fail_on_5() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.article_id = 5 THEN RAISE EXCEPTION 'no 5 here'; END IF;"
                " RETURN NEW; END $$"
            )
        )
        c.execute(
            text(
                "CREATE TRIGGER fail_on_5 BEFORE INSERT ON article"
                " FOR EACH ROW EXECUTE FUNCTION fail_on_5()"
            )
        )
    batches = write_batches(engine, [article_in(record(i)) for i in range(1, 11)], 2)
    written: list[BatchCounts] = []
    with pytest.raises(DBAPIError, match="no 5 here"):
        written.extend(batches)
    assert len(written) == 2
    assert sorted(_stored(engine)) == [1, 2, 3, 4]  # nothing after the failed batch


def test_a_batch_that_fails_while_staging_leaves_the_batch_before_it_written(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL writer's staging")
    from app.ingest import stores

    real_stage = stores.PostgresStore.stage

    def stage(self: stores.PostgresStore, connection: Any, batch: Any) -> None:
        if batch[0].article_id == 3:
            raise RuntimeError("staging exploded")
        time.sleep(0.2)  # the batch before it is still staging when this one fails
        real_stage(self, connection, batch)

    monkeypatch.setattr(stores.PostgresStore, "stage", stage)
    batches = write_batches(engine, [article_in(record(i)) for i in range(1, 7)], 2)
    written: list[BatchCounts] = []
    with pytest.raises(RuntimeError, match="staging exploded"):
        written.extend(batches)
    assert len(written) == 1
    assert sorted(_stored(engine)) == [1, 2]


def test_a_reading_error_comes_after_the_batches_read_before_it_are_written(
    engine: Engine,
) -> None:
    def records() -> Iterator[ArticleIn]:
        for i in range(1, 5):
            yield article_in(record(i))
        raise ChildProcessError("the reader process failed: boom")

    written: list[BatchCounts] = []
    with pytest.raises(ChildProcessError, match="boom"):
        written.extend(write_batches(engine, records(), 2))
    assert sorted(_stored(engine)) == [1, 2, 3, 4]
    assert sum(c.inserted for c in written) == 4


def test_suspend_gives_up_when_readers_hold_the_table_and_the_load_keeps_its_indexes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's DDL waits on its own busy timeout")
    from app.ingest import indexes

    monkeypatch.setattr(indexes, "SUSPEND_LOCK_WAIT_MS", 100)
    path = write_jsonl(tmp_path / "a.jsonl", [record(i) for i in range(1, 30)])
    with engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM article"))  # holds ACCESS SHARE till rollback
        assert indexes.suspend(engine) is False
        summary = ingest([path], engine, on_reject=print, child_reader=False)
        reader.rollback()
    assert summary.inserted == 29
    with engine.connect() as c:
        assert indexes.missing_indexes(c) == []


def test_a_batch_reads_the_table_by_its_key_whatever_its_statistics_say(
    engine: Engine,
) -> None:
    """A load grows the table faster than PostgreSQL's statistics follow it: its batches'
    statements find each staged row's stored copy by a primary-key probe, never a scan of
    the whole table (a plan the planner chose from such statistics, per batch, made a
    load quadratic: 230 ms a batch at 300,000 rows)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the PostgreSQL writer's statements")
    from app.ingest import stores

    add_articles(engine, (record(i) for i in range(1, 3001)))
    with engine.connect() as connection:
        # Statistics of the table as a load's first moments left them: nearly empty.
        connection.execute(text("ALTER TABLE article SET (autovacuum_enabled = off)"))
        connection.execute(
            text("UPDATE pg_class SET reltuples = 10 WHERE oid = 'article'::regclass")
        )
        connection.commit()
        store = stores.PostgresStore(connection)
        with connection.begin():
            store.stage(connection, [article_in(record(i)) for i in range(2990, 5001)])
            statements = store.statements(set(), 3000)
            plans = []
            for statement in statements:
                sql = statement.compile(dialect=engine.dialect)
                found = connection.exec_driver_sql(f"EXPLAIN {sql}", dict(sql.params))
                plans.append("\n".join(row[0] for row in found))
            counts = connection.execute(statements[0]).one()
    for plan in plans:
        assert "Index Scan using pk_article on article " in plan, plan
        assert "Seq Scan on article " not in plan, plan
    assert tuple(counts) == (2000, 0)  # 2990-3000 stored as they are, 3001-5000 new
