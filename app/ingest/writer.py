"""Batched upserts, one transaction per batch, revisions numbered under the write lock.

Each batch takes the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
transaction lock), numbers its changed rows from max(revision)+1, and commits, so revisions
commit in the order they are numbered and a change-feed reader never sees N+1 before N.
A batch ensures its sources exist, compares content hashes with what is stored, and writes
only new and changed rows with `INSERT ... ON CONFLICT DO UPDATE`; the conflict clause
re-checks the hash, so concurrent ingests of the same records stay correct. A kill between
batches loses nothing committed and leaves no half batch: the re-run skips what is stored.

This module drives the batches (chunking, in-batch duplicates, retries, PostgreSQL's two
connections taking turns); the SQL that writes one lives in app/ingest/stores.py.
"""

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from itertools import islice
from typing import TypeVar

from sqlalchemy import Connection, Engine

from app.db import SQLITE_BEGIN_OPTION
from app.ingest.busy import while_busy
from app.ingest.records import ArticleIn
from app.ingest.stores import BatchCounts, DryRunStore, PostgresStore, SqliteStore, Store

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


PG_LANES = 2


def _write_postgres(engine: Engine, batches: Batches) -> Iterator[BatchCounts]:
    """Two connections take turns, so one stages and tokenises a batch while the other
    writes the batch before it under the write lock.

    Staging (COPY, then the search vectors, ~300 µs an article) needs no lock; writing does,
    and batches write and commit in input order (`_Turns`), so revisions and last-one-wins
    duplicates come out as one connection would leave them. A failed batch stops the ones
    after it before they write; the ones before it still commit. When reading fails, the
    batches already read are written before the error is raised, as one connection would.
    """
    with ExitStack() as stack:
        lanes = []
        for _ in range(PG_LANES):
            connection = stack.enter_context(engine.connect())
            lanes.append((connection, PostgresStore(connection)))
        # Entered last, so it exits first: its threads are done before the connections close.
        pool = stack.enter_context(ThreadPoolExecutor(PG_LANES, "ingest-writer"))
        turns = _Turns()
        pending: deque[tuple[Future[BatchCounts], BatchCounts]] = deque()
        numbered = enumerate(batches)
        reading_failed: Exception | None = None
        try:
            while True:
                try:
                    number, (kept, dupes) = next(numbered)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - raised below, after the writes
                    reading_failed = exc
                    break
                if len(pending) == PG_LANES:  # the lane this batch needs is busy until then
                    future, earlier = pending.popleft()
                    yield future.result() + earlier
                connection, store = lanes[number % PG_LANES]
                write = partial(_write_in_turn, connection, store, kept, number, turns)
                pending.append((pool.submit(write), dupes))
            while pending:
                future, earlier = pending.popleft()
                yield future.result() + earlier
            if reading_failed is not None:
                raise reading_failed
        except BaseException:
            # Stopped from outside (or by a failed batch, already raised): batches waiting
            # for their turn give up instead of waiting forever.
            turns.stop_after(-1)
            raise


class _Aborted(Exception):
    """An earlier batch failed, or the load was stopped: this one must not be written."""


class _Turns:
    """Batch n writes only after batch n-1 has committed, and not after a failure before it."""

    def __init__(self) -> None:
        self._next = 0
        self._last_allowed = sys.maxsize
        self._changed = threading.Condition()

    def wait(self, number: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: number > self._last_allowed or self._next == number)
            if number > self._last_allowed:
                raise _Aborted

    def done(self, number: int) -> None:
        with self._changed:
            self._next = number + 1
            self._changed.notify_all()

    def stop_after(self, number: int) -> None:
        """Batches after `number` give up; those up to it still write in their turn."""
        with self._changed:
            self._last_allowed = min(self._last_allowed, number)
            self._changed.notify_all()


def _write_in_turn(
    connection: Connection,
    store: PostgresStore,
    batch: Sequence[ArticleIn],
    number: int,
    turns: _Turns,
) -> BatchCounts:
    """Stage `batch` at once, write it in its turn; on failure, stop the batches after it."""

    def attempt() -> BatchCounts:
        with connection.begin():
            store.stage(connection, batch)
            turns.wait(number)
            counts = store.write_staged(connection, batch)
        turns.done(number)  # committed
        return counts

    try:
        return _retrying(attempt)
    except BaseException:
        turns.stop_after(number - 1)  # an earlier batch still staging may yet write
        raise


def _write_with_retries(
    connection: Connection, store: Store, batch: Sequence[ArticleIn]
) -> BatchCounts:
    def attempt() -> BatchCounts:
        with connection.begin():
            return store.write(connection, batch)

    return _retrying(attempt)


def _retrying(attempt: Callable[[], T]) -> T:
    """`attempt()` (one transaction), again while another writer is in the way."""
    return while_busy(attempt)


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


def checkpoint(engine: Engine) -> None:
    """SQLite: copy the WAL into the database and truncate it, after a large load.

    A large load's index rebuild is one transaction, so the WAL grows as large as the
    index, and it keeps that size on disk until a checkpoint truncates it. When other
    connections still read or write, the checkpoint does what it can and leaves the rest
    to theirs: SQLite reports that as a row, not an error.
    """
    if engine.dialect.name != "sqlite":
        return

    def attempt() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()

    while_busy(attempt)
