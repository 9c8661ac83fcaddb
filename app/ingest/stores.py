"""Where a batch goes: the SQLite, PostgreSQL and dry-run stores, and their shared SQL.

Each store's `write` runs inside the caller's transaction, takes the write lock, numbers
changed rows from max(revision)+1 and writes only new and changed rows. The SQL comes from
SQLAlchemy Core over the models (the single schema truth), compiled once per run: SQLite
gets one `executemany` per batch, PostgreSQL a `COPY` into a temporary staging table and
one `INSERT ... SELECT ... ON CONFLICT` from it.
"""

import operator
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
import psycopg
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Select,
    Table,
    and_,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import col

from app import models
from app.db import now_utc
from app.ingest.records import ArticleIn
from app.writes.lock import last_revision, take_write_lock

T = TypeVar("T")

# The record's own fields, as the staging table and the COPY carry them: ArticleIn's order.
# (`extra` arrives as JSON text, written by validation with orjson, which is 3-5x faster
# than the stdlib serialiser Core would use and reads back to the same object.)
RECORD_COLUMNS = (
    "article_id",
    "source_id",
    "title",
    "content",
    "extra",
    "content_hash",
    "word_count",
    "excerpt",
    "published_at",
    "url",
    "author",
)
ALL_COLUMNS = (*RECORD_COLUMNS, "revision", "ingested_at", "updated_at")
# What an upsert rewrites: every field but the key, a new revision, and the time.
UPDATABLE = (*RECORD_COLUMNS[1:], "revision", "updated_at")


@dataclass(frozen=True, slots=True)
class BatchCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # The records the batch wrote, and how many revisions it took: what a search index fed
    # during the load needs (app/search/sync.py LoadIndexer).
    written: tuple[ArticleIn, ...] = ()
    revisions: int = 0
    suppressed: int = 0  # taken down (app/takedowns.py): not written

    def __add__(self, other: "BatchCounts") -> "BatchCounts":
        return BatchCounts(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.written + other.written,
            self.revisions + other.revisions,
            self.suppressed + other.suppressed,
        )


def _insert(connection: Connection) -> Any:
    return sqlite.insert if connection.dialect.name == "sqlite" else postgresql.insert


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


def stored_hashes(connection: Connection, ids: Sequence[int]) -> dict[int, str]:
    """content_hash by article_id for those of `ids` already stored."""
    article = models.article_table
    if connection.dialect.name == "sqlite":
        # json_each takes the ids as one parameter: Core's expanding IN renders 2,000
        # placeholders per batch, 7% of a load's time.
        found = connection.exec_driver_sql(_SQLITE_STORED_HASHES, (orjson.dumps(ids).decode(),))
        return {row.article_id: row.content_hash for row in found}
    rows = connection.execute(
        select(article.c.article_id, article.c.content_hash).where(article.c.article_id.in_(ids))
    )
    return {row.article_id: row.content_hash for row in rows}


_SQLITE_STORED_HASHES = (
    "SELECT article_id, content_hash FROM article"
    " WHERE article_id IN (SELECT value FROM json_each(?))"
)


def taken_down(connection: Connection, ids: Sequence[int]) -> set[int]:
    """Those of `ids` under a takedown that stands (not restored): a write must skip them.
    Read under the write lock, so a deletion either precedes the batch or follows it."""
    # Each takes the ids as one parameter, as stored_hashes does: no SQL built per batch.
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(_SQLITE_TAKEN_DOWN, (orjson.dumps(ids).decode(),))
    else:
        rows = connection.exec_driver_sql(_PG_TAKEN_DOWN, (list(ids),))
    return {row[0] for row in rows}


_SQLITE_TAKEN_DOWN = (
    "SELECT article_id FROM takedown WHERE restored_at IS NULL"
    " AND article_id IN (SELECT value FROM json_each(?))"
)
_PG_TAKEN_DOWN = (
    "SELECT article_id FROM takedown WHERE restored_at IS NULL AND article_id = ANY(%s)"
)


def _suppress(
    connection: Connection, batch: Sequence[ArticleIn]
) -> tuple[Sequence[ArticleIn], int]:
    """`batch` without its taken-down records, and how many those were."""
    gone = taken_down(connection, [r.article_id for r in batch])
    if not gone:
        return batch, 0
    return [r for r in batch if r.article_id not in gone], len(gone)


def _count(batch: Sequence[ArticleIn], stored: dict[int, str]) -> tuple[list[ArticleIn], int, int]:
    """The records to write, and how many of them are inserts and updates."""
    changed = [r for r in batch if stored.get(r.article_id) != r.content_hash]
    inserted = sum(1 for r in changed if r.article_id not in stored)
    return changed, inserted, len(changed) - inserted


class Store(Protocol):
    def write(self, connection: Connection, batch: Sequence[ArticleIn]) -> BatchCounts: ...


class SqliteStore:
    """One `executemany` of a compiled upsert per batch, with driver-ready tuples.

    (Multi-row VALUES statements were measured too: 30-45% more CPU than executemany.)
    """

    def __init__(self, connection: Connection) -> None:
        article = models.article_table
        stmt = sqlite.insert(article)
        stmt = stmt.on_conflict_do_update(
            index_elements=["article_id"],
            set_={name: stmt.excluded[name] for name in UPDATABLE},
            where=col(models.Article.content_hash) != stmt.excluded.content_hash,
        )
        compiled = stmt.compile(dialect=connection.dialect, column_keys=list(ALL_COLUMNS))
        self.sql = str(compiled)
        # Core orders parameters as the table does; rows are built in ALL_COLUMNS order.
        order = [ALL_COLUMNS.index(name) for name in compiled.positiontup or ()]
        self.reorder = operator.itemgetter(*order)
        self.timestamp = _bind(article.c.ingested_at, connection)

    def write(self, connection: Connection, batch: Sequence[ArticleIn]) -> BatchCounts:
        revision = last_revision(connection)
        batch, suppressed = _suppress(connection, batch)
        upsert_sources(connection, {r.source_id: None for r in batch})
        stored = stored_hashes(connection, [r.article_id for r in batch])
        changed, inserted, updated = _count(batch, stored)
        if changed:
            stamp = self.timestamp
            now = stamp(now_utc())
            reorder = self.reorder
            rows = [
                reorder((*r[:8], stamp(r[8]), r[9], r[10], revision + n, now, now))
                for n, r in enumerate(changed, start=1)
            ]
            connection.exec_driver_sql(self.sql, rows)
        unchanged = len(batch) - len(changed)
        return BatchCounts(inserted, updated, unchanged, tuple(changed), len(changed), suppressed)


def _bind(column: Column[Any], connection: Connection) -> Callable[[Any], Any]:
    """The column type's own bind conversion, so rows match what Core would have written."""
    dialect = connection.dialect
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _identity


def _identity(value: T) -> T:
    return value


# The staged columns whose values pass TOAST's threshold, and how `article` compresses them.
STAGED_TOAST = ("content", "extra")
_COMPRESSION = text(
    "SELECT attname, CASE attcompression WHEN 'l' THEN 'lz4' ELSE 'pglz' END"
    " FROM pg_attribute WHERE attrelid = 'article'::regclass AND attname = ANY(:names)"
    " AND attcompression <> ''"
)
# The staging table of this server session, or NULL.
_STAGE_TABLE = select(func.to_regclass("pg_temp.article_stage"))


class PostgresStore:
    """COPY a batch into a temporary staging table, then, under the write lock, one
    INSERT ... SELECT ... ON CONFLICT from it.

    The COPY takes no lock, so concurrent loads overlap their transfers. The staging table
    takes its columns from the model; it lives as long as the server session and empties
    itself at each commit. Each batch's transaction makes sure its session has one: through
    a transaction pooler, each may run in another session (app/db.py).
    """

    def __init__(self, connection: Connection) -> None:
        article = models.article_table
        self.stage_table = Table(
            "article_stage",
            MetaData(),
            *(Column(name, article.c[name].type) for name in RECORD_COLUMNS),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
        self.target = article
        with connection.begin():
            # Staged bodies pass TOAST's threshold too: compress them as `article` does
            # (migration 0004), not with the slower pglz default.
            self.compression = [
                f"ALTER TABLE article_stage ALTER COLUMN {name} SET COMPRESSION {method}"
                for name, method in connection.execute(_COMPRESSION, {"names": list(STAGED_TOAST)})
            ]
        names = ", ".join(RECORD_COLUMNS)
        self.copy_sql = f"COPY article_stage ({names}) FROM STDIN"

    def write(self, connection: Connection, batch: Sequence[ArticleIn]) -> BatchCounts:
        self.stage(connection, batch)
        return self.write_staged(connection, batch)

    def stage(self, connection: Connection, batch: Sequence[ArticleIn]) -> None:
        """Copy `batch` into the staging table: no lock taken."""
        if connection.execute(_STAGE_TABLE).scalar() is None:
            self.stage_table.create(connection)
            for statement in self.compression:
                connection.exec_driver_sql(statement)
        self._copy(connection, batch)

    def write_staged(self, connection: Connection, batch: Sequence[ArticleIn]) -> BatchCounts:
        """Under the write lock: number and write the staged rows that are new or changed."""
        take_write_lock(connection)
        revision = last_revision(connection)
        gone = taken_down(connection, [r.article_id for r in batch])
        upsert_sources(connection, {r.source_id: None for r in batch if r.article_id not in gone})
        counting, writing = self.statements(gone, revision)
        inserted, updated = connection.execute(counting).one()
        written: set[int] = set()
        if inserted or updated:
            written = set(connection.execute(writing).scalars())
        return BatchCounts(
            inserted,
            updated,
            len(batch) - len(gone) - inserted - updated,
            tuple(r for r in batch if r.article_id in written),
            inserted + updated,
            len(gone),
        )

    def statements(
        self, gone: set[int], revision: int
    ) -> tuple[Select[int, int], ReturningInsert[int]]:
        """The staged batch's two statements: how many rows are new and how many changed,
        and the write of those (numbered from `revision` + 1, RETURNING their ids); the
        `gone` ids (taken down) are neither.

        Each staged row's stored hash is read by one primary-key probe. As a plain join,
        the planner, misled by the statistics of a table that a load is growing, hashed the
        whole table for every batch (auto_explain: 230 ms a batch at 300,000 rows, growing
        with the table: a 1M load took 432 s); a LATERAL subquery with a LIMIT cannot
        become that join."""
        article, stage = self.target, self.stage_table
        old = (
            select(article.c.content_hash.label("content_hash"))
            .where(article.c.article_id == stage.c.article_id)
            .limit(1)
            .lateral("old")
        )
        joined = stage.outerjoin(old, true())
        kept = stage.c.article_id.not_in(gone) if gone else true()
        is_new = and_(old.c.content_hash.is_(None), kept)  # content_hash is NOT NULL
        changed = and_(old.c.content_hash.is_distinct_from(stage.c.content_hash), kept)
        counting = select(
            func.count().filter(is_new),
            func.count().filter(changed) - func.count().filter(is_new),
        ).select_from(joined)
        now = now_utc()
        numbered = (
            select(
                *(stage.c[name] for name in RECORD_COLUMNS),
                (func.row_number().over(order_by=stage.c.article_id) + revision).label("revision"),
                literal(now, article.c.ingested_at.type).label("ingested_at"),
                literal(now, article.c.updated_at.type).label("updated_at"),
            )
            .select_from(joined)
            .where(changed)
        )
        stmt = postgresql.insert(article).from_select(list(ALL_COLUMNS), numbered)
        stmt = stmt.on_conflict_do_update(
            index_elements=["article_id"],
            set_={name: stmt.excluded[name] for name in UPDATABLE},
            where=article.c.content_hash != stmt.excluded.content_hash,
        )
        return counting, stmt.returning(article.c.article_id)

    def _copy(self, connection: Connection, batch: Sequence[ArticleIn]) -> None:
        """COPY the batch through the driver. Its errors are raised as SQLAlchemy's, as every
        other statement's are, so callers (retries, the CLI's exit 2) see one error family."""
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(self.copy_sql) as copy:
                for r in batch:
                    copy.write_row(r)  # an ArticleIn is its RECORD_COLUMNS, in order
        except psycopg.Error as exc:
            raise DBAPIError.instance(self.copy_sql, None, exc, psycopg.Error) from exc
        finally:
            cursor.close()


class DryRunStore:
    """Counts what a real run would do and writes nothing to the database.

    Ids seen earlier in the run live in a temporary SQLite file, not in memory, so a dry run
    of any size stays flat and still counts a record repeated across batches as a real run
    would (an update or unchanged, not a second insert).
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="corpus-dry-run-")
        self.seen = sqlite3.connect(f"{self._dir.name}/seen.db", isolation_level=None)
        # Scratch data: nothing to recover, so no journal and no sync; each batch's ids go
        # in one transaction (autocommit made each id a write and a sync of its own: a dry
        # run of 200,000 records took 42 s, mostly waiting on the disk, against 31 s for
        # the real load).
        self.seen.execute("PRAGMA journal_mode = OFF")
        self.seen.execute("PRAGMA synchronous = OFF")
        self.seen.execute("CREATE TABLE seen (article_id INTEGER PRIMARY KEY, hash TEXT)")

    def write(self, connection: Connection, batch: Sequence[ArticleIn]) -> BatchCounts:
        batch, suppressed = _suppress(connection, batch)
        ids = [r.article_id for r in batch]
        stored = stored_hashes(connection, ids)
        # json_each takes the ids as one parameter: no SQL built per batch.
        seen = self.seen.execute(
            "SELECT article_id, hash FROM seen"
            " WHERE article_id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(ids).decode(),),
        )
        stored.update(seen.fetchall())
        changed, inserted, updated = _count(batch, stored)
        with self.seen:  # commits, or rolls back if the insert fails
            self.seen.execute("BEGIN")
            self.seen.executemany(
                "INSERT OR REPLACE INTO seen VALUES (?, ?)",
                [(r.article_id, r.content_hash) for r in changed],
            )
        return BatchCounts(inserted, updated, len(batch) - len(changed), suppressed=suppressed)

    def close(self) -> None:
        self.seen.close()
        self._dir.cleanup()
