"""Where a route's database work runs: inline on the event loop, or on a worker thread.

A thread hop costs more than an indexed SQLite read from the page cache, so short SQLite
reads run inline; on PostgreSQL they run on the loop too, awaiting the database
(app/queries/prepared.py, `on_loop`); everything else (searches, counts, group-bys) takes
one hop. A search, count or facet first probes the data revision for its kept reply
(app/api/articles.py), on the loop. Inline calls are safe on SQLite because WAL readers
never wait for writers, and the load-shedding gate keeps concurrent requests within the
pool, so a checkout never waits.

The hop is asyncio's executor rather than anyio.to_thread, whose capacity limiter and
cancel scopes cost more per call than the executor (bench/inprocess.py shows the effect).
in_thread keeps anyio's two guarantees that matter: the caller's context goes along, and
a cancelled caller still waits for its thread to finish, so its cleanup (closing the
session) never runs beside work still using that session.
"""

import asyncio
import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

from sqlmodel import Session

from app.queries.prepared import loop_engine_of, on_loop

P = ParamSpec("P")
T = TypeVar("T")

# Threads start on demand; the load-shedding gate bounds how many calls are in flight.
_EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="corpus-db")


async def in_thread(call: Callable[[], T]) -> T:
    """`call()` on a worker thread, with the caller's context."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_EXECUTOR, contextvars.copy_context().run, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # A thread cannot be stopped: let it finish, then be cancelled.
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        raise


async def run_db(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` on a worker thread: one hop for all of a request's database work."""
    return await in_thread(partial(fn, *args, **kwargs))


async def run_db_short(
    session: Session, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run `fn`, whose database work is single reads (Prepared.rows), on the event loop:
    inline on SQLite, awaiting the database on PostgreSQL; on a worker thread when there is
    no engine for the loop."""
    if session.get_bind().dialect.name == "sqlite":
        return fn(*args, **kwargs)
    loop_engine = loop_engine_of(session)
    if loop_engine is not None:
        return await on_loop(loop_engine, partial(fn, *args, **kwargs))
    return await in_thread(partial(fn, *args, **kwargs))
