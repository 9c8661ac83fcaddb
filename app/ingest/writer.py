"""Batched upserts through SQLAlchemy Core: one transaction per batch, no ORM bookkeeping.

A batch first ensures its sources exist, then compares content hashes with what is stored,
and writes only new and changed rows with `INSERT ... ON CONFLICT DO UPDATE`. The conflict
clause re-checks the hash, so concurrent ingests of the same records stay correct.
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from app import models
from app.db import SQLITE_BEGIN_OPTION, now_utc
from app.ingest.records import ArticleIn

T = TypeVar("T")

UPDATABLE = (
    "source_id",
    "title",
    "content",
    "extra",
    "content_hash",
    "word_count",
    "revision",
    "updated_at",
)
# Serialises PostgreSQL writers per batch, so revisions commit in the order they are
# numbered and a change-feed reader never sees revision N+1 before N. (SQLite's write lock,
# taken by BEGIN IMMEDIATE, does the same there.)
WRITE_LOCK_KEY = 0x61727469636C65  # "article"
DEADLOCK_RETRIES = 5


@dataclass(frozen=True, slots=True)
class BatchCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _insert(connection: Connection) -> Any:
    return sqlite.insert if connection.dialect.name == "sqlite" else postgresql.insert


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
    kept = sorted(last.values(), key=lambda r: r.article_id)  # one lock order: no deadlocks
    return kept, BatchCounts(updated=updated, unchanged=unchanged)


def upsert_sources(connection: Connection, names: dict[int, str | None]) -> None:
    """Create missing sources; a given name replaces the stored one, None keeps it."""
    if not names:
        return
    insert = _insert(connection)
    named = [{"source_id": k, "name": v} for k, v in sorted(names.items()) if v is not None]
    bare = [{"source_id": k, "name": None} for k, v in sorted(names.items()) if v is None]
    if named:
        stmt = insert(models.Source)
        connection.execute(
            stmt.on_conflict_do_update(
                index_elements=["source_id"], set_={"name": stmt.excluded.name}
            ),
            named,
        )
    if bare:
        connection.execute(insert(models.Source).on_conflict_do_nothing(), bare)


def _last_revision(connection: Connection) -> int:
    """The newest revision, read under the write lock so no other writer can interleave."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
    revision = models.article_table.c.revision
    return int(connection.execute(select(func.coalesce(func.max(revision), 0))).scalar_one())


def _write_batch(connection: Connection, batch: Sequence[ArticleIn], now: datetime) -> BatchCounts:
    revision = _last_revision(connection)
    upsert_sources(connection, {r.source_id: None for r in batch})
    ids = [r.article_id for r in batch]
    stored = dict(
        connection.execute(
            select(col(models.Article.article_id), col(models.Article.content_hash)).where(
                col(models.Article.article_id).in_(ids)
            )
        ).all()
    )
    rows = []
    inserted = updated = unchanged = 0
    for r in batch:
        old = stored.get(r.article_id)
        if old is None:
            inserted += 1
        elif old != r.content_hash:
            updated += 1
        else:
            unchanged += 1
            continue
        revision += 1
        rows.append(
            {
                "article_id": r.article_id,
                "source_id": r.source_id,
                "title": r.title,
                "content": r.content,
                "extra": r.extra,
                "content_hash": r.content_hash,
                "word_count": r.word_count,
                "revision": revision,
                "ingested_at": now,
                "updated_at": now,
            }
        )
    if rows:
        stmt = _insert(connection)(models.Article)
        stmt = stmt.on_conflict_do_update(
            index_elements=["article_id"],
            set_={name: stmt.excluded[name] for name in UPDATABLE},
            where=col(models.Article.content_hash) != stmt.excluded.content_hash,
        )
        connection.execute(stmt, rows)
    return BatchCounts(inserted, updated, unchanged)


def _is_deadlock(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001")


def write_batches(
    engine: Engine, records: Iterable[ArticleIn], batch_size: int
) -> Iterator[BatchCounts]:
    """Upsert `records` in batches, one transaction each, yielding what each batch did."""
    for batch in chunks(records, batch_size):
        kept, dupes = _dedupe(batch)
        for attempt in range(DEADLOCK_RETRIES):
            try:
                with (
                    engine.connect().execution_options(
                        **{SQLITE_BEGIN_OPTION: "IMMEDIATE"}
                    ) as connection,
                    connection.begin(),
                ):
                    counts = _write_batch(connection, kept, now_utc())
                break
            except DBAPIError as exc:
                if not _is_deadlock(exc) or attempt == DEADLOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        yield BatchCounts(
            counts.inserted + dupes.inserted,
            counts.updated + dupes.updated,
            counts.unchanged + dupes.unchanged,
        )
