"""Statements compiled once per shape and run on the DBAPI cursor.

For an indexed read of 20 rows, SQLAlchemy's per-execution work (building the statement,
its cache key, the execution context, Row objects) cost several times the read itself
(bench/list_api.py, profiled with cProfile). The statements are still written with
SQLAlchemy Core, so the models stay the one schema truth and each backend gets its own SQL;
only the compiling happens once, and the results come back as plain tuples passed through
the same result processors (dates, JSON) SQLAlchemy would have applied.
"""

import contextvars
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Dialect, Engine, Select, event
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.util.concurrency import await_
from sqlmodel import Session

from app.db import bounded_begin, shares_session

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Processor = Callable[[Any], Any] | None
C = TypeVar("C")
T = TypeVar("T")
# Stale pooled connections a single read may meet and drop in a row (after a database
# restart, every idle one is): more than a pool holds by default (8 + 4 overflow).
STALE_RETRIES = 16
# While a call runs on the event loop (on_loop), the engine its single reads go through.
_LOOP_READS: contextvars.ContextVar[Engine | None] = contextvars.ContextVar(
    "corpus_loop_reads", default=None
)
_LOOP_ENGINES: "weakref.WeakKeyDictionary[Engine, AsyncEngine]" = weakref.WeakKeyDictionary()


def pair_loop_engine(engine: Engine, loop_engine: "AsyncEngine") -> None:
    """Let the single reads of sessions on `engine` run on the loop through `loop_engine`."""
    _LOOP_ENGINES[engine] = loop_engine


def loop_engine_of(session: Session) -> "AsyncEngine | None":
    """The engine paired with the session's, if any (app/db.py: PostgreSQL only)."""
    bind = session.get_bind()
    return _LOOP_ENGINES.get(bind) if isinstance(bind, Engine) else None


async def on_loop(engine: "AsyncEngine", call: Callable[[], T]) -> T:
    """`call()` on the event loop, its single reads (Prepared.rows outside a transaction)
    awaited on `engine`'s connections rather than blocking: the sync code runs in a
    greenlet that hands each wait to the loop (SQLAlchemy's own bridge for its asyncio
    extension). Against a worker thread, on PostgreSQL in process: a detail 15-25% less
    CPU and ~30% less time, a list page 3-10% less CPU (the hop and its GIL handovers).
    Anything else `call` does with the database runs as it would in a thread, holding the
    loop meanwhile: callers pass only single reads."""
    from sqlalchemy.util.concurrency import greenlet_spawn

    def reading() -> T:
        _LOOP_READS.set(engine.sync_engine)
        return call()

    # The caller's context goes along (request id in logs), as with a thread hop.
    return await greenlet_spawn(contextvars.copy_context().run, reading)


@dataclass(frozen=True, slots=True)
class Prepared:
    sql: str
    # Bind names in the order a positional paramstyle (SQLite's qmark) wants them, or None
    # when the driver takes them by name (psycopg's pyformat).
    order: tuple[str, ...] | None
    processors: tuple[Processor, ...]
    defaults: dict[str, Any]  # the statement's own literals (e.g. substr's bounds)
    dialect: Dialect
    # The binds whose type converts values on the way in (dates on SQLite): name, converter.
    bind_processors: tuple[tuple[str, Callable[[Any], Any]], ...] = ()

    @classmethod
    def of(cls, stmt: Select[Any], dialect: Dialect, *, driver_values: bool = False) -> "Prepared":
        """Compile `stmt` for `dialect`. With `driver_values`, rows come as the driver gives
        them: for columns (ints, floats) that need no conversion, or whose converter needs
        the result's column types (PostgreSQL's numerics)."""
        compiled = stmt.compile(dialect=dialect)
        positional = compiled.positional and compiled.positiontup is not None
        processors = tuple(
            None
            if driver_values
            else column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in stmt.selected_columns
        )
        converters = (
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bind in compiled.binds.items()
        )
        return cls(
            compiled.string,
            tuple(compiled.positiontup or ()) if positional else None,
            processors,
            {name: value for name, value in compiled.params.items() if value is not None},
            dialect,
            tuple((name, convert) for name, convert in converters if convert is not None),
        )

    def rows(self, session: Session, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row, as a tuple.

        Inside the session's transaction when it has one, so that a request reading more
        than once sees one snapshot (callers open it first). Otherwise the statement runs
        alone, outside the Session (whose begin and close cost more than the read): one
        statement is its own snapshot on both backends. On SQLite it runs on this thread's
        kept connection (_KeptReaders), elsewhere on one straight from the pool.
        """
        bind = session.get_bind()
        if session.in_transaction() or not isinstance(bind, Engine):
            return self._run(session.connection().connection.dbapi_connection, params)
        if self.dialect.name == "sqlite":
            return self._run(self._wrapped(_kept_reader, bind), params)
        bind = _LOOP_READS.get() or bind  # the same SQL: both are psycopg's dialect
        # Straight from the pool (an Engine Connection around it adds work one statement
        # does not need), in autocommit for the one statement: no BEGIN and no ROLLBACK
        # round trips. Through a transaction pooler, in a transaction of its own that
        # carries the statement timeout (app/db.py). The pool does not ping on checkout: a
        # connection that a database restart left stale fails at once, is dropped, and the
        # read is tried on the next one.
        for attempt in range(STALE_RETRIES + 1):
            pooled = self._wrapped(Engine.raw_connection, bind)
            begin = bounded_begin(pooled.info) if shares_session(pooled.info) else None
            try:
                if begin is None and bind.dialect.is_async:
                    return self._await(pooled.dbapi_connection, pooled.driver_connection, params)
                return self._run(pooled.dbapi_connection, params, autocommit=True, begin=begin)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                pooled.invalidate(exc.orig)
                if attempt == STALE_RETRIES:
                    raise
            finally:
                pooled.close()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wrapped(self, connect: Callable[[Engine], C], engine: Engine) -> C:
        """`connect(engine)`, its driver errors raised as SQLAlchemy's (the pool does not
        wrap them), so the outage handlers see a DBAPIError as from any other statement."""
        try:
            return connect(engine)
        except self.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                None, None, exc, self.dialect.loaded_dbapi.Error, dialect=self.dialect
            ) from exc

    def _run(
        self,
        dbapi_connection: Any,
        params: dict[str, Any],
        *,
        autocommit: bool = False,
        begin: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run the statement; with `begin`, in the transaction it opens (autocommit only)."""
        dbapi_error: type[Exception] = self.dialect.loaded_dbapi.Error
        # Connections that are always in autocommit (the loop's: app/db.py) stay so.
        switch = autocommit and not dbapi_connection.autocommit
        try:
            if switch:
                dbapi_connection.autocommit = True
            try:
                cursor = dbapi_connection.cursor()
                try:
                    if begin is not None:
                        cursor.execute(begin)
                    try:
                        cursor.execute(self.sql, self._bind(params))
                        rows: Sequence[tuple[Any, ...]] = cursor.fetchall()
                    finally:
                        if begin is not None and not dbapi_connection.closed:
                            dbapi_connection.rollback()  # before autocommit can be reset
                finally:
                    cursor.close()
            finally:
                if switch and not dbapi_connection.closed:
                    dbapi_connection.autocommit = False  # as the pool and Sessions expect
        except dbapi_error as exc:
            raise self._raised(exc, dbapi_connection, params) from exc
        return self._converted(rows)

    def _await(
        self, dbapi_connection: Any, driver: Any, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run the statement on an asyncio driver's connection (psycopg's, in autocommit),
        awaiting its cursor from this greenlet (`on_loop`). SQLAlchemy's adapter of the
        connection would wrap the cursor in one of its own and keep its rows in a deque:
        ~25 µs a read more on PostgreSQL (bench/pg_read_path.py)."""
        try:
            rows = await_(_fetch_all(driver, self.sql, self._bind(params)))
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._raised(exc, dbapi_connection, params) from exc
        return self._converted(rows)

    def _raised(
        self, exc: Exception, dbapi_connection: Any, params: dict[str, Any]
    ) -> StatementError:
        """What SQLAlchemy would have raised, so the outage handlers still see a 503."""
        lost = self.dialect.is_disconnect(exc, dbapi_connection, None)  # type: ignore[arg-type]
        return DBAPIError.instance(
            self.sql,
            params,
            exc,
            self.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=self.dialect,
        )

    def _converted(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """`rows` through the result processors (SQLAlchemy's, per column)."""
        converted = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        if not converted:
            return list(rows)
        if len(converted) == 1:  # most pages: one date column among plain ones
            ((i, convert),) = converted
            return [(*row[:i], convert(row[i]), *row[i + 1 :]) for row in rows]
        found = []
        for row in rows:
            values = list(row)
            for i, convert in converted:
                values[i] = convert(values[i])
            found.append(tuple(values))
        return found

    def _bind(self, params: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        merged = {**self.defaults, **params}
        for name, convert in self.bind_processors:
            if name in merged:
                merged[name] = convert(merged[name])
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)


async def _fetch_all(driver: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
    async with driver.cursor() as cursor:
        await cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = await cursor.fetchall()
        return rows


def sqlite_reader(session: Session) -> sqlite3.Connection | None:
    """The SQLite connection a single read of `session` runs on, as Prepared.rows picks it:
    the session's own inside its transaction, else this thread's kept one (no pool
    checkout, no BEGIN). None on other backends."""
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    if session.in_transaction() or not isinstance(bind, Engine):
        return cast(sqlite3.Connection, session.connection().connection.dbapi_connection)
    return cast(sqlite3.Connection, _kept_reader(bind))


class _KeptReaders:
    """Each thread's own SQLite connection for single statements, kept outside the pool.

    A pool checkout and checkin cost as much as the indexed read itself; on SQLite a
    connection is a file handle, so each thread (in practice the event loop's, which runs
    the short reads inline: app/api/calls.py) keeps one. It is detached from the pool, so
    it takes no pool slot, and it runs in autocommit (app/db.py), so each statement reads
    the newest committed data. Disposing of the engine closes them all.
    """

    def __init__(self, engine: Engine) -> None:
        self.local = threading.local()
        self.opened: list[Any] = []
        self.lock = threading.Lock()
        event.listen(engine, "engine_disposed", self.close_all)

    def get(self, engine: Engine) -> Any:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            pooled = engine.raw_connection()  # runs the pool's connect hooks (pragmas)
            pooled.detach()
            connection = self.local.connection = pooled.dbapi_connection
            with self.lock:
                self.opened.append(connection)
        return connection

    def close_all(self, _connection: object = None) -> None:
        with self.lock:
            opened, self.opened = self.opened, []
            self.local = threading.local()
        for connection in opened:
            connection.close()


_KEPT: "weakref.WeakKeyDictionary[Engine, _KeptReaders]" = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def _kept_reader(engine: Engine) -> Any:
    kept = _KEPT.get(engine)
    if kept is None:
        with _KEPT_LOCK:
            kept = _KEPT.get(engine)
            if kept is None:
                kept = _KEPT[engine] = _KeptReaders(engine)
    return kept.get(engine)
