"""Whether the database a process reads is a primary or a streaming replica, and how far
a replica is behind its primary. Takes a Session; knows nothing of HTTP.

A replica's lag is 0 while its WAL receiver runs and it has replayed all it received, else
the age of the last transaction it replayed: cut off from its primary (no receiver), that
grows with the time since it last heard. SQLite has no replicas.
"""

from dataclasses import dataclass

from sqlalchemy import (
    Float,
    case,
    cast,
    exists,
    extract,
    func,
    literal_column,
    null,
    select,
    table,
)
from sqlmodel import Session


@dataclass(frozen=True, slots=True)
class DatabaseState:
    replica: bool
    lag_s: float | None  # a replica's seconds behind its primary; None on a primary


# pg_stat_wal_receiver shows its row (not its details) to every role while a receiver runs.
_RECEIVING = exists(select(literal_column("1")).select_from(table("pg_stat_wal_receiver")))
_REPLICA = func.pg_is_in_recovery()
_LAG = case(
    (~_REPLICA, null()),
    (_RECEIVING & (func.pg_last_wal_receive_lsn() == func.pg_last_wal_replay_lsn()), 0.0),
    else_=extract("epoch", func.now() - func.pg_last_xact_replay_timestamp()),
)
_STATE = select(_REPLICA, cast(_LAG, Float))


def database_state(session: Session) -> DatabaseState:
    """One statement on PostgreSQL; SQLite is always its own primary."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(select(literal_column("1"))).scalar_one()  # it answers
        return DatabaseState(replica=False, lag_s=None)
    replica, lag_s = session.execute(_STATE).one()
    return DatabaseState(replica=bool(replica), lag_s=None if lag_s is None else float(lag_s))
