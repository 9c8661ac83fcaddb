"""Takedowns: `corpus delete` removes articles for good, `corpus restore` lifts that.

A deletion, under the writers' lock (app/ingest/stores.py), deletes each article's row
(content, title, excerpt, extra: everything but the id and source) and writes a row in
`takedown` numbered from the same revision sequence as article writes. So every list,
count, facet, export and source count stops showing it at the commit; the detail answers
410 (app/queries/takedowns.py); the change feed and the search index follower see the
takedown at its revision, in order with other changes; and ingest skips the id while the
takedown stands (counted as `suppressed`). Restoring sets `restored_at` and keeps the row,
so the revision is never reused; the next ingest of the record brings the article back
with a new revision.

On SQLite the deletion runs with `secure_delete`, which overwrites the freed cells with
zeros, and then checkpoints the WAL, so the deleted text leaves the files at once; on
PostgreSQL dead tuples keep it on disk until VACUUM (docs/operations.md).
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import models
from app.db import SQLITE_BEGIN_OPTION, now_utc
from app.writes.busy import while_busy
from app.writes.lock import last_revision, take_write_lock

CHUNK_IDS = 500  # ids per statement: well under SQLite's bound-parameter limit


@dataclass(slots=True)
class Outcome:
    """What a delete or restore did (or, in a dry run, would do), id by id."""

    done: list[int] = field(default_factory=list)  # deleted, or restored
    missing: list[int] = field(default_factory=list)  # no such article, or no takedown
    already: list[int] = field(default_factory=list)  # delete only: taken down before
    revision: int = 0  # the newest revision afterwards


def delete_articles(
    engine: Engine,
    ids: Iterable[int],
    *,
    source_id: int | None = None,
    reason: str | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Take down `ids` and, with `source_id`, every article of that source: one transaction.

    An id whose article was restored but not ingested again is taken down again; an id
    already taken down is `already`; an id never stored is `missing`.
    """
    wanted = set(ids)
    outcome = while_busy(lambda: _delete(engine, wanted, source_id, reason, dry_run))
    if not dry_run and outcome.done:
        _flush_sqlite(engine)
    return outcome


def _delete(
    engine: Engine, wanted: set[int], source_id: int | None, reason: str | None, dry_run: bool
) -> Outcome:
    """One attempt at delete_articles: one transaction, under the writers' lock."""
    wanted = set(wanted)  # this attempt's own: a source's ids are read inside it
    outcome = Outcome()
    with _locked(engine) as connection:
        revision = last_revision(connection)
        if source_id is not None:
            article = models.article_table
            wanted.update(
                connection.execute(
                    select(article.c.article_id).where(article.c.source_id == source_id)
                ).scalars()
            )
        for chunk in _chunks(sorted(wanted)):
            found = _stored_sources(connection, chunk)
            standing, lifted = _takedowns(connection, [i for i in chunk if i not in found])
            found |= lifted
            outcome.already.extend(i for i in chunk if i in standing)
            outcome.missing.extend(i for i in chunk if i not in found and i not in standing)
            taken = sorted(found)
            outcome.done.extend(taken)
            if dry_run or not taken:
                continue
            now = now_utc()
            rows = [
                {
                    "article_id": article_id,
                    "source_id": found[article_id],
                    "revision": revision + n,
                    "deleted_at": now,
                    "reason": reason,
                    "restored_at": None,
                }
                for n, article_id in enumerate(taken, start=1)
            ]
            revision += len(rows)
            _upsert_takedowns(connection, rows)
            article = models.article_table
            connection.execute(delete(article).where(article.c.article_id.in_(taken)))
        outcome.revision = revision
    return outcome


def restore_articles(engine: Engine, ids: Iterable[int], *, dry_run: bool = False) -> Outcome:
    """Lift the takedowns of `ids`; ids with none standing are `missing`."""
    wanted = sorted(set(ids))
    return while_busy(lambda: _restore(engine, wanted, dry_run))


def _restore(engine: Engine, wanted: list[int], dry_run: bool) -> Outcome:
    """One attempt at restore_articles: one transaction, under the writers' lock."""
    outcome = Outcome()
    takedown = models.takedown_table
    with _locked(engine) as connection:
        for chunk in _chunks(wanted):
            standing, _ = _takedowns(connection, chunk)
            outcome.done.extend(i for i in chunk if i in standing)
            outcome.missing.extend(i for i in chunk if i not in standing)
            if standing and not dry_run:
                connection.execute(
                    update(takedown)
                    .where(takedown.c.article_id.in_(sorted(standing)))
                    .values(restored_at=now_utc())
                )
        outcome.revision = last_revision(connection)
    return outcome


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """One transaction under the writers' lock, the one ingest batches take (a busy
    database raises: the callers' while_busy runs the attempt again)."""
    with engine.connect() as connection:
        is_sqlite = connection.dialect.name == "sqlite"
        if is_sqlite:
            # Zero what is deleted rather than leave it in free pages (set before BEGIN).
            connection.connection.dbapi_connection.execute("PRAGMA secure_delete = ON")  # type: ignore[union-attr]
            connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        try:
            with connection.begin():
                take_write_lock(connection)
                yield connection
        finally:
            if is_sqlite:
                connection.invalidate()  # its pragma must not outlive us in a pool


def _flush_sqlite(engine: Engine) -> None:
    """SQLite: copy the zeroed pages into the database file and empty the WAL, whose older
    frames still hold the deleted text. Best effort: a reader mid-transaction keeps the WAL
    until it ends, and the next checkpoint finishes the job."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    iterator = iter(ids)
    while chunk := list(islice(iterator, CHUNK_IDS)):
        yield chunk


def _stored_sources(connection: Connection, ids: list[int]) -> dict[int, int]:
    """source_id by article_id, for those of `ids` stored as articles."""
    article = models.article_table
    rows = connection.execute(
        select(article.c.article_id, article.c.source_id).where(article.c.article_id.in_(ids))
    )
    return {row.article_id: row.source_id for row in rows}


def _takedowns(connection: Connection, ids: list[int]) -> tuple[set[int], dict[int, int]]:
    """Of `ids`: those whose takedown stands, and those (with their source) whose takedown
    was lifted."""
    if not ids:
        return set(), {}
    takedown = models.takedown_table
    rows = connection.execute(
        select(takedown.c.article_id, takedown.c.source_id, takedown.c.restored_at).where(
            takedown.c.article_id.in_(ids)
        )
    )
    standing: set[int] = set()
    lifted: dict[int, int] = {}
    for article_id, source, restored_at in rows:
        if restored_at is None:
            standing.add(article_id)
        else:
            lifted[article_id] = source
    return standing, lifted


def _upsert_takedowns(connection: Connection, rows: list[dict[str, Any]]) -> None:
    insert = sqlite.insert if connection.dialect.name == "sqlite" else postgresql.insert
    stmt = insert(models.takedown_table)
    columns = ("source_id", "revision", "deleted_at", "reason", "restored_at")
    stmt = stmt.on_conflict_do_update(
        index_elements=["article_id"], set_={name: stmt.excluded[name] for name in columns}
    )
    connection.execute(stmt, rows)
