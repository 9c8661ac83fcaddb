"""Engines and migrations: where each backend's connection settings live.

Connection-level differences (pragmas, pool, timeouts) stay here. Queries whose SQL must
differ per backend branch on `session.get_bind().dialect.name` where they build it, and
ingest chooses its writer by `backend(url)`; nothing else should need to know.

A PostgreSQL connection may reach the server through a transaction pooler (PgBouncer in
`pool_mode = transaction`), which hands each transaction whichever server session is free:
nothing may outlive a transaction there. Each new connection finds out (`shares_session`),
and on a shared one prepares no statements on the server and sets the statement timeout
per transaction (`SET LOCAL`) instead of once for the session. The URL is all that changes.
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from app.settings import Settings

if TYPE_CHECKING:  # Alembic is imported when a migration runs: 11 MB and 0.16 s otherwise
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

# Set on a connection (`execution_options(sqlite_begin="IMMEDIATE")`) to take SQLite's write
# lock when the transaction starts: a deferred one that upgrades later gets SQLITE_BUSY at once.
SQLITE_BEGIN_OPTION = "sqlite_begin"


from_stored = datetime.fromisoformat


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _as_utc(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """On SQLite, the stored text straight to an aware datetime: datetime.fromisoformat
        reads SQLAlchemy's `YYYY-MM-DD HH:MM:SS.ffffff` in C, where the generic path (a
        regex, then process_result_value) cost a fifth of a list page's time."""
        if dialect.name != "sqlite":
            if self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype):
                return super().result_processor(dialect, coltype)
            return _as_utc

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:  # appending the offset costs a tenth of replace(tzinfo=UTC)
                return from_stored(value + "+00:00")
            except ValueError:  # text with an offset of its own, written by another tool
                return _as_utc(from_stored(value))

        return process


def _as_utc(value: datetime | None) -> datetime | None:
    """A datetime read from the database, in UTC (a naive one is UTC already). Our own
    PostgreSQL sessions run in UTC (_tune_postgres), so psycopg's values pass untouched:
    one identity check, where the generic TypeDecorator path made three calls and a copy
    of each (7.5 µs against 24 for a page's 21 dates, timeit)."""
    if value is None or value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# PostgreSQL's refusal of a write on a read replica (read_only_sql_transaction).
READ_ONLY_SQLSTATE = "25006"


def refused_as_read_only(exc: BaseException) -> bool:
    """Whether `exc` is a replica's refusal of a write."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == READ_ONLY_SQLSTATE


def backend(url: str) -> str:
    """`sqlite` or `postgresql`, from a database URL."""
    return make_url(url).get_backend_name()


SQLITE_PAGE_SIZE = 16384


def make_engine(settings: Settings, *, pooled: bool = True) -> Engine:
    """Build the engine for `settings.database_url`, tuned for its backend."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, pooled=pooled)
    return _postgres_engine(settings, pooled=pooled)


# Keys of a pooled connection's `info` (its pool record's), set when it connects.
_SHARED_SESSION = "corpus_shared_session"
_TIMEOUT_MS = "corpus_statement_timeout_ms"


def shares_session(info: Mapping[str, Any]) -> bool:
    """Whether the connection with this `info` reaches the server through a transaction
    pooler: each of its transactions may run in another server session."""
    return bool(info.get(_SHARED_SESSION))


def bounded_begin(info: Mapping[str, Any]) -> str:
    """For a shared session in autocommit: one round trip that opens a transaction bounded by
    the statement timeout (a simple query, so the two statements travel together)."""
    return f"BEGIN; SET LOCAL statement_timeout = {int(info[_TIMEOUT_MS])}"


def _postgres_engine(settings: Settings, *, pooled: bool) -> Engine:
    # No pre-ping: it cost a round trip (two, with its BEGIN) on every checkout, most
    # of a short read. A restart still heals without a process restart: single reads
    # drop stale connections and retry (app/queries/prepared.py), and a Session that
    # meets one invalidates the whole pool, answering one 503 problem.
    # No `options` startup parameter either: PgBouncer refuses it (or drops it, when told
    # to ignore it); the statement timeout is set once connected, below.
    engine = create_engine(
        make_url(settings.database_url),
        connect_args={"connect_timeout": settings.connect_timeout_s},
        **_pool_kwargs(settings, pooled),
    )
    _tune_postgres(engine, int(settings.statement_timeout_ms))
    return engine


def make_loop_engine(settings: Settings) -> "AsyncEngine | None":
    """On PostgreSQL, a second engine whose connections the event loop awaits (psycopg's
    async connections): the single reads of the hottest routes run on the loop through it
    (app/queries/prepared.py), with no thread hop. Its pool is sized as the engine's, and
    its connections are set up as the engine's (timeout, pooler). None on SQLite, whose
    short reads run inline anyway."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        return None
    from sqlalchemy.ext.asyncio import create_async_engine

    # Its connections only ever run single reads, each its own transaction: they stay in
    # autocommit, so a read neither switches it on and off nor is rolled back on return.
    engine = create_async_engine(
        url.set(drivername="postgresql+psycopg_async"),
        connect_args={"connect_timeout": settings.connect_timeout_s},
        pool_reset_on_return=None,
        **_pool_kwargs(settings, True),
    )
    _tune_postgres(engine.sync_engine, int(settings.statement_timeout_ms), autocommit=True)
    return engine


def _tune_postgres(engine: Engine, timeout_ms: int, *, autocommit: bool = False) -> None:
    """Every new connection of `engine` gets the statement timeout, and learns whether it
    reaches the server through a transaction pooler; it is left in `autocommit`. Written
    against the DBAPI's cursor, so psycopg's connections and SQLAlchemy's adapter of its
    async ones take the same path."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # A pooler answers the startup with a process id of its own making, never the
        # server's: a session of our own reports the same id both ways.
        dbapi_connection.autocommit = True
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            server_pid = cursor.fetchone()[0]
            shared = server_pid != dbapi_connection.info.backend_pid
            if shared:
                # psycopg prepares a statement run five times in the server session: the
                # next transaction's session would lack it, or hold another's of that name.
                driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
                driver.prepare_threshold = None
            else:
                # Dates come back in UTC as psycopg reads them (UTCDateTime passes them on).
                cursor.execute(f"SET statement_timeout = {timeout_ms}; SET TimeZone = 'UTC'")
            cursor.close()
        finally:
            if not dbapi_connection.closed:
                dbapi_connection.autocommit = autocommit
        record.info[_SHARED_SESSION] = shared
        record.info[_TIMEOUT_MS] = timeout_ms

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if shares_session(connection.info):
            # psycopg opens the transaction with this statement: the timeout is its own.
            cursor = connection.connection.dbapi_connection.cursor()
            cursor.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            cursor.close()


def primary_engine(settings: Settings) -> Engine | None:
    """The engine for the API's own writes when `primary_database_url` is set: one
    connection, for a flush a second."""
    if settings.primary_database_url is None:
        return None
    primary = settings.model_copy(
        update={
            "database_url": settings.primary_database_url,
            "pool_size": 1,
            "pool_max_overflow": 0,
        }
    )
    return make_engine(primary)


def _pool_kwargs(settings: Settings, pooled: bool) -> dict[str, Any]:
    """A bounded pool for the API (a wait turns into a fast 503); none for one-shot commands."""
    if not pooled:
        return {"poolclass": NullPool}
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.pool_max_overflow,
        "pool_timeout": settings.pool_timeout_s,
    }


def _sqlite_engine(settings: Settings, *, pooled: bool) -> Engine:
    url = make_url(settings.database_url)
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "connect_args": {
            "check_same_thread": False,
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
        },
    }
    engine = create_engine(url, **kwargs, **_pool_kwargs(settings, pooled))
    busy_timeout_ms = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Takes effect only while the file is empty, so only on a new database (before WAL
        # is on): 16 KB pages hold a few 3 KB articles each instead of spilling most into
        # overflow pages; a 100k-record load ran 10-15% faster, reads the same.
        cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode = WAL")  # readers run during an ingest
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        # On the DBAPI connection: SQLAlchemy's own execute path costs 20 µs a request here.
        statement = f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}"
        connection.connection.dbapi_connection.execute(statement)

    return engine


def migrations_dir() -> Path:
    """The Alembic scripts: beside the package in a checkout, else under the working dir."""
    beside = Path(__file__).resolve().parent.parent / "migrations"
    return beside if beside.is_dir() else Path.cwd() / "migrations"


def alembic_config(database_url: str) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the database to `revision`: the only way our schema is created or changed."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def sqlite_file(database_url: str) -> Path | None:
    """The absolute path of a SQLite database's file; None for anything else (PostgreSQL,
    in-memory and URI databases)."""
    url = make_url(database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database).resolve()


def schema_revision(engine: Engine) -> tuple[str | None, bool]:
    """The database's Alembic revision (None when it has none), and whether it holds any
    table at all: (None, False) is an empty database."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        return revision, bool(inspect(connection).get_table_names())


def head_revision(database_url: str) -> str | None:
    """The newest revision the migrations know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def now_utc() -> datetime:
    return datetime.now(UTC)
