"""The random-order indexes around large loads: built after the data, crash-safe.

Titles (and dates, bylines, urls) arrive in random order, so past the cache each insert
into their indexes is a random page write, while building one after the data is one sort.
A large load (a first load, or one several times bigger than what is stored) drops them,
loads, then builds them again. (Search is not in the database: app/search/ keeps its own.)

Crash safety: the indexes are dropped in a committed transaction of their own and built
again in another. A run killed in between leaves them missing; the next run finds that,
loads as a large load would, and builds them at its end. Their definitions are the ones in
app/models.py.
On PostgreSQL the DROP INDEX waits at most SUSPEND_LOCK_WAIT_MS for readers to let go of
the table (queueing the API's reads behind it meanwhile); past that, the load keeps it.
"""

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex

from app import models
from app.db import SQLITE_BEGIN_OPTION
from app.writes.lock import take_write_lock

# Build after the data when the input holds several times more records (at ~3 KB each)
# than the table, so re-running a load over a full table never pays for a rebuild.
BYTES_PER_RECORD = 3_000
DEFER_WHEN_INPUT_EXCEEDS_STORED = 4
# Random-order keys: titles, dates, bylines, urls. (The revision index is append-only and
# the writer reads it per batch; the source index has only a few insertion points.)
DEFERRED_NAMES = (
    "ix_article_title_article_id",
    "ix_article_published_at_article_id",
    "ix_article_source_id_published_at_article_id",
    "ix_article_author_article_id",
    "ix_article_url",
)
DEFERRED = sorted(
    (ix for ix in models.article_table.indexes if ix.name in DEFERRED_NAMES),
    key=lambda ix: DEFERRED_NAMES.index(str(ix.name)),
)


def deferred_indexes(connection: Connection) -> dict[str, str]:
    """The indexes a large load builds after the data, by name, with their DDL here."""
    return {
        str(ix.name): str(CreateIndex(ix).compile(dialect=connection.dialect)) for ix in DEFERRED
    }


def _present(connection: Connection) -> set[str]:
    """Names of the article table's indexes."""
    if connection.dialect.name == "postgresql":
        listed = (
            "SELECT indexname FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = 'article'"
        )
        return set(connection.execute(text(listed)).scalars())
    return set(
        connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'article'")
        ).scalars()
    )


def missing_indexes(connection: Connection) -> list[str]:
    """The deferred indexes that are not in the schema (after a suspended or killed load)."""
    present = _present(connection)
    return [name for name in deferred_indexes(connection) if name not in present]


def _immediate(engine: Engine) -> Connection:
    return engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def needs_repair(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(missing_indexes(connection))


def should_defer(engine: Engine, input_bytes: int) -> bool:
    """Whether a load of `input_bytes` should build the indexes after the data."""
    with engine.connect() as connection:
        incoming = input_bytes // BYTES_PER_RECORD
        # Counted only as far as the answer needs: a full count is a scan on PostgreSQL.
        enough = incoming // DEFER_WHEN_INPUT_EXCEEDS_STORED + 1
        some = select(models.article_table.c.article_id).limit(enough).subquery()
        stored = connection.execute(select(func.count()).select_from(some)).scalar_one()
        return incoming > DEFER_WHEN_INPUT_EXCEEDS_STORED * stored


SUSPEND_LOCK_WAIT_MS = 5_000
LOCK_NOT_AVAILABLE = "55P03"


def suspend(engine: Engine) -> bool:
    """Drop the deferred indexes (committed at once) until `rebuild`. False when PostgreSQL's
    readers held the table past SUSPEND_LOCK_WAIT_MS: nothing was dropped."""
    # No write lock on PostgreSQL: DROP INDEX waits for transactions using the table anyway,
    # and a load's batch reads `article` before it asks for the lock: a deadlock.
    with _immediate(engine) as connection:
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
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
    """Create what is missing, in one transaction, under the write lock, so two loads that
    both deferred never build the same index."""
    with _immediate(engine) as connection, connection.begin():
        take_write_lock(connection)
        ddl = deferred_indexes(connection)
        for name in missing_indexes(connection):
            connection.exec_driver_sql(ddl[name])
