"""SQLite's indexes around large loads: built after the data, crash-safe.

Migration 0002 keeps the FTS5 table `article_fts` in step with `article` by triggers, which
tokenise every body as it is written: most of a load's time. A large load (a first load,
or one bigger than what is stored) drops the triggers, loads, then recreates them and
rebuilds the index in one transaction, about twice as fast overall. The title index goes
the same way: titles arrive in random order, so past the page cache each insert into it
is a random page write, while building it afterwards is one sort.

Crash safety: the triggers and the index are dropped in a committed transaction of their
own, and put back in the same transaction as the rebuild. A run killed in between leaves
them missing; the next run finds that, loads as a large load would, and rebuilds at its
end. The trigger DDL below must match migration 0002; tests/test_ingest_scale.py compares
them. The index is created from its definition in app/models.py.
"""

from sqlalchemy import Connection, Engine, Index, func, select, text

from app import models
from app.db import SQLITE_BEGIN_OPTION

FTS_TRIGGERS = {
    "article_fts_ai": """
        CREATE TRIGGER article_fts_ai AFTER INSERT ON article BEGIN
          INSERT INTO article_fts(rowid, title, content)
          VALUES (new.article_id, new.title, new.content);
        END""",
    "article_fts_ad": """
        CREATE TRIGGER article_fts_ad AFTER DELETE ON article BEGIN
          INSERT INTO article_fts(article_fts, rowid, title, content)
          VALUES ('delete', old.article_id, old.title, old.content);
        END""",
    "article_fts_au": """
        CREATE TRIGGER article_fts_au AFTER UPDATE OF title, content ON article BEGIN
          INSERT INTO article_fts(article_fts, rowid, title, content)
          VALUES ('delete', old.article_id, old.title, old.content);
          INSERT INTO article_fts(rowid, title, content)
          VALUES (new.article_id, new.title, new.content);
        END""",
}
REBUILD_SQL = "INSERT INTO article_fts(article_fts) VALUES ('rebuild')"
# FTS5 flushes its in-memory term hash to a new segment each time it reaches `hashsize`
# (1 MB by default), then merges segments: a bigger hash for the rebuild means fewer, larger
# segments and less merging: 16 MB made the rebuild 30% faster at 30k records, and keeps
# peak RSS under 150 MB (32 MB did not). The setting is stored in the index's config
# table, so the rebuild's own transaction removes it again.
REBUILD_HASH_BYTES = 16 << 20
# A rebuild costs about 0.45x a trigger-indexed write per row, over stored and incoming rows
# alike: defer when the input holds several times more records than the table (at ~3 KB a
# record), so re-running a load over a full table never pays for a rebuild.
BYTES_PER_RECORD = 3_000
DEFER_WHEN_INPUT_EXCEEDS_STORED = 4


# Built after a large load: random-order keys. (The revision index is append-only and the
# writer reads it per batch; the source index has only a few insertion points.)
DEFERRED_INDEXES = [
    ix for ix in models.article_table.indexes if ix.name == "ix_article_title_article_id"
]


def _has_fts(connection: Connection) -> bool:
    found = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": models.FTS_TABLE},
    ).first()
    return found is not None


def _present(connection: Connection, kind: str) -> set[str]:
    return set(
        connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = :kind AND tbl_name = 'article'"),
            {"kind": kind},
        ).scalars()
    )


def missing_triggers(connection: Connection) -> list[str]:
    """The FTS triggers that are not in the schema (after a suspended or killed load)."""
    present = _present(connection, "trigger")
    return [name for name in FTS_TRIGGERS if name not in present]


def missing_indexes(connection: Connection) -> list[Index]:
    """The deferred indexes that are not in the schema (after a suspended or killed load)."""
    present = _present(connection, "index")
    return [index for index in DEFERRED_INDEXES if index.name not in present]


def _immediate(engine: Engine) -> Connection:
    return engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def needs_repair(engine: Engine) -> bool:
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as connection:
        lost_triggers = _has_fts(connection) and bool(missing_triggers(connection))
        return lost_triggers or bool(missing_indexes(connection))


def should_defer(engine: Engine, input_bytes: int) -> bool:
    """Whether a load of `input_bytes` should build the index after the data."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as connection:
        if not _has_fts(connection):
            return False
        stored = connection.execute(select(func.count()).select_from(models.article_table))
        incoming = input_bytes // BYTES_PER_RECORD
        return incoming > DEFER_WHEN_INPUT_EXCEEDS_STORED * stored.scalar_one()


def suspend(engine: Engine) -> None:
    """Drop the FTS triggers and the deferred indexes (committed at once): writes stop
    indexing until `rebuild`."""
    with _immediate(engine) as connection, connection.begin():
        for name in FTS_TRIGGERS:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        for index in DEFERRED_INDEXES:
            index.drop(connection, checkfirst=True)


def rebuild(engine: Engine) -> None:
    """Recreate what is missing and rebuild the full-text index, in one transaction."""
    with _immediate(engine) as connection, connection.begin():
        for index in missing_indexes(connection):
            index.create(connection)
        if not _has_fts(connection):
            return
        for name in missing_triggers(connection):
            connection.exec_driver_sql(FTS_TRIGGERS[name])
        connection.exec_driver_sql(
            "INSERT INTO article_fts(article_fts, rank) VALUES ('hashsize', ?)",
            (REBUILD_HASH_BYTES,),
        )
        connection.exec_driver_sql(REBUILD_SQL)
        connection.exec_driver_sql("DELETE FROM article_fts_config WHERE k = 'hashsize'")
