"""The write lock: every writer (a load's batch, a takedown, a restore, an index rebuild)
holds it while it numbers revisions, so revisions commit in the order they are numbered
and a change-feed reader never sees N+1 before N.

SQLite's lock is its own (BEGIN IMMEDIATE, app/db.py's SQLITE_BEGIN_OPTION); PostgreSQL's
is an advisory transaction lock, released at commit or rollback, which a transaction
pooler keeps within its server session for the transaction's length.
"""

from sqlalchemy import Connection, func, select

from app import revisions

# Serialises PostgreSQL writers per transaction (migration 0009 holds a copy of it).
WRITE_LOCK_KEY = 0x61727469636C65  # "article"


def take_write_lock(connection: Connection) -> None:
    """PostgreSQL: the per-transaction writer lock (SQLite's is BEGIN IMMEDIATE)."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))


def last_revision(connection: Connection) -> int:
    """The newest revision; read under the write lock so no other writer can interleave."""
    return revisions.newest_revision(connection)
