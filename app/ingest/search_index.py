"""Search and sort indexes around large loads: built after the data, crash-safe.

SQLite: migration 0002 keeps the FTS5 table `article_fts` in step with `article` by
triggers, which tokenise every body as it is written: most of a load's time. A large load (a
first load, or one bigger than what is stored) drops the triggers, loads, then recreates
them and rebuilds the index in one transaction, about twice as fast overall.
PostgreSQL: every row's tsvector is computed as it is written (app/ingest/stores.py), but
the GIN index over them is cheaper built once than grown row by row: at 100k articles,
8.4 s to build after the load against 19 s added to it by inserting into the index. The
DROP INDEX waits at most SUSPEND_LOCK_WAIT_MS for readers to let go of the table (and
queues the API's reads behind it meanwhile); past that, the load keeps its indexes.
Both: the title index goes the same way: titles arrive in random order, so past the cache
each insert into it is a random page write, while building it afterwards is one sort.

Crash safety: the triggers and indexes are dropped in a committed transaction of their
own, and put back in the same transaction as the rebuild. A run killed in between leaves
them missing; the next run finds that, loads as a large load would, and rebuilds at its
end. The DDL below must match migration 0002; tests/test_ingest_scale.py compares them.
The title index is created from its definition in app/models.py.
"""

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from app import models
from app.db import SQLITE_BEGIN_OPTION
from app.ingest.stores import take_write_lock

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


# PostgreSQL's full-text index, as migration 0002 creates it.
PG_SEARCH_INDEX = "ix_article_search_vector"
PG_SEARCH_INDEX_DDL = f"CREATE INDEX {PG_SEARCH_INDEX} ON article USING gin (search_vector)"

# Built after a large load: random-order keys. (The revision index is append-only and the
# writer reads it per batch; the source index has only a few insertion points.)
TITLE_INDEXES = [
    ix for ix in models.article_table.indexes if ix.name == "ix_article_title_article_id"
]


def deferred_indexes(connection: Connection) -> dict[str, str]:
    """The indexes a large load builds after the data, by name, with their DDL here."""
    ddl = {
        str(ix.name): str(CreateIndex(ix).compile(dialect=connection.dialect))
        for ix in TITLE_INDEXES
    }
    if connection.dialect.name == "postgresql":
        ddl[PG_SEARCH_INDEX] = PG_SEARCH_INDEX_DDL
    return ddl


def _has_fts(connection: Connection) -> bool:
    found = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": models.FTS_TABLE},
    ).first()
    return found is not None


def _present(connection: Connection, kind: str) -> set[str]:
    """Names of the article table's indexes (or, SQLite only, its triggers)."""
    if connection.dialect.name == "postgresql":
        assert kind == "index"
        listed = (
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = 'article'"
        )
        return set(connection.execute(text(listed)).scalars())
    return set(
        connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = :kind AND tbl_name = 'article'"),
            {"kind": kind},
        ).scalars()
    )


def missing_triggers(connection: Connection) -> list[str]:
    """SQLite: the FTS triggers that are not in the schema (after a suspended or killed load)."""
    if connection.dialect.name != "sqlite" or not _has_fts(connection):
        return []
    present = _present(connection, "trigger")
    return [name for name in FTS_TRIGGERS if name not in present]


def missing_indexes(connection: Connection) -> list[str]:
    """The deferred indexes that are not in the schema (after a suspended or killed load)."""
    present = _present(connection, "index")
    return [name for name in deferred_indexes(connection) if name not in present]


def _immediate(engine: Engine) -> Connection:
    return engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def needs_repair(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(missing_triggers(connection) or missing_indexes(connection))


def should_defer(engine: Engine, input_bytes: int) -> bool:
    """Whether a load of `input_bytes` should build the indexes after the data."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite" and not _has_fts(connection):
            return False
        incoming = input_bytes // BYTES_PER_RECORD
        # Counted only as far as the answer needs: a full count is a scan on PostgreSQL.
        enough = incoming // DEFER_WHEN_INPUT_EXCEEDS_STORED + 1
        some = select(models.article_table.c.article_id).limit(enough).subquery()
        stored = connection.execute(select(func.count()).select_from(some)).scalar_one()
        return incoming > DEFER_WHEN_INPUT_EXCEEDS_STORED * stored


SUSPEND_LOCK_WAIT_MS = 5_000
LOCK_NOT_AVAILABLE = "55P03"


def suspend(engine: Engine) -> bool:
    """Drop the FTS triggers and the deferred indexes (committed at once): writes stop
    indexing until `rebuild`. False when PostgreSQL's readers held the table past
    SUSPEND_LOCK_WAIT_MS: nothing was dropped."""
    # No write lock on PostgreSQL: DROP INDEX waits for transactions using the table anyway,
    # and a load's batch reads `article` before it asks for the lock: a deadlock.
    with _immediate(engine) as connection:
        try:
            with connection.begin():
                if connection.dialect.name == "sqlite":
                    for name in FTS_TRIGGERS:
                        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
                else:
                    connection.exec_driver_sql(
                        f"SET LOCAL lock_timeout = {int(SUSPEND_LOCK_WAIT_MS)}"
                    )
                for name in deferred_indexes(connection):
                    connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                return False
            raise
    return True


def rebuild(engine: Engine) -> None:
    """Recreate what is missing and rebuild the full-text index, in one transaction.

    Under the write lock, so two loads that both deferred never build the same index.
    """
    with _immediate(engine) as connection, connection.begin():
        take_write_lock(connection)
        ddl = deferred_indexes(connection)
        for name in missing_indexes(connection):
            connection.exec_driver_sql(ddl[name])
        if connection.dialect.name != "sqlite" or not _has_fts(connection):
            return
        for name in missing_triggers(connection):
            connection.exec_driver_sql(FTS_TRIGGERS[name])
        connection.exec_driver_sql(
            "INSERT INTO article_fts(article_fts, rank) VALUES ('hashsize', ?)",
            (REBUILD_HASH_BYTES,),
        )
        connection.exec_driver_sql(REBUILD_SQL)
        connection.exec_driver_sql("DELETE FROM article_fts_config WHERE k = 'hashsize'")
