"""Waiting out other writers: the one retry loop that every phase of a load goes through.

Two loads into one database take turns at its write lock: SQLite's (BEGIN IMMEDIATE),
PostgreSQL's advisory lock or its row locks. SQLite's own busy timeout covers short waits,
but the other load may hold the lock far longer (its deferred index build is one
transaction). So each phase of a load (sources, index suspension, each batch, the index
rebuild, the final checkpoint) runs its transaction through `while_busy`, which runs it
again, rolled back and from the start, for as long as the database reports another writer
in the way (SQLite busy or locked; a PostgreSQL deadlock or serialisation failure),
up to BUSY_WAIT_S in all. Any other error is raised at once.
"""

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

# Long enough for another load's index build over millions of records; a bound all the same,
# so a database held forever (a stuck process) ends the load with the database's own error.
BUSY_WAIT_S = 3600.0
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 1.0
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_PG_RETRYABLE = frozenset({"40P01", "40001"})  # deadlock, serialisation failure


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` says another writer is in the way (so the same attempt may succeed later).

    SQLite's BEGIN IMMEDIATE runs in an engine event (app/db.py), so its error arrives as
    the driver's own, not wrapped by SQLAlchemy.
    """
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) keep the primary code in the low byte.
        return getattr(orig, "sqlite_errorcode", 0) & 0xFF in _SQLITE_BUSY_CODES
    return getattr(orig, "sqlstate", None) in _PG_RETRYABLE


def while_busy(attempt: Callable[[], T], *, limit_s: float = BUSY_WAIT_S) -> T:
    """`attempt()` (one whole transaction), again while the database is busy, up to `limit_s`."""
    deadline = time.monotonic() + limit_s
    pause = FIRST_PAUSE_S
    while True:
        try:
            return attempt()
        except (DBAPIError, sqlite3.OperationalError) as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_S)
