"""Batched upserts, one transaction per batch, revisions numbered under the write lock.

Each batch takes the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
transaction lock), numbers its changed rows from max(revision)+1, and commits, so revisions
commit in the order they are numbered and a change-feed reader never sees N+1 before N.
A batch ensures its sources exist, compares content hashes with what is stored, and writes
only new and changed rows with `INSERT ... ON CONFLICT DO UPDATE`; the conflict clause
re-checks the hash, so concurrent ingests of the same records stay correct. A kill between
batches loses nothing committed and leaves no half batch: the re-run skips what is stored.

This module drives the batches (chunking, in-batch duplicates, retries); the SQL that
writes one lives in app/ingest/stores.py.
"""

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from sqlalchemy import Connection, Engine

from app import models
from app.db import SQLITE_BEGIN_OPTION
from app.ingest.records import ArticleIn
from app.ingest.stores import BatchCounts, DryRunStore, PostgresStore, SqliteStore, Store
from app.writes.busy import while_busy

__all__ = ["BatchCounts", "chunks", "tune_sqlite_for_load", "write_batches"]

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _dedupe(batch: list[ArticleIn]) -> tuple[list[ArticleIn], BatchCounts]:
    """Keep the last record per id; earlier copies count as they would have one by one."""
    last: dict[int, ArticleIn] = {}
    updated = unchanged = 0
    for record in batch:
        previous = last.get(record.article_id)
        if previous is not None:
            if previous.content_hash == record.content_hash:
                unchanged += 1
            else:
                updated += 1
        last[record.article_id] = record
    if len(last) == len(batch):
        return sorted(batch, key=_article_id), BatchCounts()
    kept = sorted(last.values(), key=_article_id)  # one lock order: no deadlocks
    return kept, BatchCounts(updated=updated, unchanged=unchanged)


def _article_id(record: ArticleIn) -> int:
    return record.article_id


def write_batches(
    engine: Engine, records: Iterable[ArticleIn], batch_size: int, *, dry_run: bool = False
) -> Iterator[BatchCounts]:
    """Upsert `records` in batches, one transaction each, yielding what each batch did."""
    batches = (_dedupe(batch) for batch in chunks(records, batch_size))
    if dry_run:
        yield from _write_dry_run(engine, batches)
    elif engine.dialect.name == "sqlite":
        yield from _write_sqlite(engine, batches)
    else:
        yield from _write_postgres(engine, batches)


Batches = Iterator[tuple[list[ArticleIn], BatchCounts]]  # each kept batch, and its dupes


def _write_dry_run(engine: Engine, batches: Batches) -> Iterator[BatchCounts]:
    dry = DryRunStore()
    try:
        with engine.connect() as connection:
            for kept, dupes in batches:
                yield _write_with_retries(connection, dry, kept) + dupes
    finally:
        dry.close()


def _write_sqlite(engine: Engine, batches: Batches) -> Iterator[BatchCounts]:
    with engine.connect() as connection:
        try:
            tune_sqlite_for_load(connection)  # before IMMEDIATE: its pragmas need no lock
            connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            store = SqliteStore(connection)
            for kept, dupes in batches:
                yield _write_with_retries(connection, store, kept) + dupes
        finally:
            # Its pragmas must not outlive the load in a pool: close it instead.
            connection.invalidate()


def _write_postgres(engine: Engine, batches: Batches) -> Iterator[BatchCounts]:
    with engine.connect() as connection:
        store = PostgresStore(connection)
        for kept, dupes in batches:
            yield _write_with_retries(connection, store, kept) + dupes


def _write_with_retries(
    connection: Connection, store: Store, batch: Sequence[ArticleIn]
) -> BatchCounts:
    def attempt() -> BatchCounts:
        with connection.begin():
            return store.write(connection, batch)

    return while_busy(attempt)  # again while another writer is in the way


WAL_CHECKPOINT_BYTES = 32 << 20


def tune_sqlite_for_load(connection: Connection) -> None:
    """Connection-level pragmas for a bulk load; journaling stays on (WAL, synchronous=NORMAL).

    A larger auto-checkpoint interval means fewer, longer checkpoints. The page cache stays
    small: the indexes with random keys are built after a large load, so a bigger cache buys
    little speed for memory the load's bound counts. Foreign keys are not checked: each batch
    creates its sources before its articles, in the same transaction under the write lock,
    so the check could never fail, and it is a large share of the writer's CPU. All are per
    connection, and write_batches closes it after the load.
    """
    # A no-op inside a transaction: set on the driver connection before anything begins one.
    connection.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
    connection.exec_driver_sql("PRAGMA cache_size = -8192")  # KiB
    connection.exec_driver_sql("PRAGMA temp_store = MEMORY")
    # The interval is counted in pages, whose size depends on when the file was made
    # (app/db.py): hold the WAL near 32 MB either way.
    page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_BYTES // page_size}")
    connection.commit()


def settle(engine: Engine) -> None:
    """After a large load, leave the table as a reader wants it, not as a load left it.

    SQLite: copy the WAL into the database and truncate it. A large load's index rebuild
    is one transaction, so the WAL grows as large as the index, and it keeps that size on
    disk until a checkpoint truncates it. When other connections still read or write, the
    checkpoint does what it can and leaves the rest to theirs: SQLite reports that as a
    row, not an error.

    PostgreSQL: VACUUM (ANALYZE) the article table. Until then the planner knows nothing of
    the rows just loaded (`count=estimated` has no estimate) and the first reader of each
    page pays for marking its rows committed; autovacuum would get to it minutes later.
    At a million articles it took 3 s after a load of 8 minutes.
    """
    if engine.dialect.name != "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {models.article_table.name}")
        return

    def attempt() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()

    while_busy(attempt)
