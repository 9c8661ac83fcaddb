"""Where a route's database work runs: inline on the event loop, or in the threadpool.

A threadpool hop costs 250-350 µs on this class of machine (measured with anyio), several
times an indexed SQLite read (~60 µs), so short SQLite reads run inline and everything else
(PostgreSQL round trips, searches, counts, group-bys) takes one hop. A search, count or
facet first probes the data revision for its kept reply (app/api/articles.py): inline on
SQLite, one more hop on PostgreSQL.
Inline calls are safe on SQLite because WAL readers never wait for writers, and the
load-shedding middleware keeps concurrent requests within the pool, so a checkout never waits.
"""

from collections.abc import Callable
from functools import partial
from typing import ParamSpec, TypeVar

from anyio import to_thread
from sqlmodel import Session

P = ParamSpec("P")
T = TypeVar("T")


async def run_db(session: Session, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` in the threadpool: one hop for all of a request's database work."""
    return await to_thread.run_sync(partial(fn, *args, **kwargs))


async def run_db_short(
    session: Session, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run `fn`, an index lookup, inline on SQLite and in the threadpool elsewhere."""
    if session.get_bind().dialect.name == "sqlite":
        return fn(*args, **kwargs)
    return await to_thread.run_sync(partial(fn, *args, **kwargs))
