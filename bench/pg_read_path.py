"""What a PostgreSQL list read costs in process, by the way it reaches the database.

    python -m bench.pg_read_path --database-url postgresql://.../bench_200000_s0

Runs a list page's own statement (the newest 21 articles, as app/queries/walks.py writes
it) `--calls` times each way, one at a time on one event loop, and prints the wall and CPU
time of a call:

- ours: `on_loop` (a greenlet) -> SQLAlchemy's pool -> `Prepared.rows`, which awaits
  psycopg's cursor itself (not SQLAlchemy's adapter of it), as a list request reads;
- a psycopg `AsyncConnectionPool` awaited from a greenlet (our bridge without
  SQLAlchemy's pool and adapter);
- that pool awaited directly, as bench/reference_pg.py reads (the reference).

The database work is the same each way, so the differences are the layers'. A database
loaded by bench/list_api.py (`--prepare-only`) does.
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.util.concurrency import await_, greenlet_spawn
from sqlmodel import Session

from app.db import make_engine, make_loop_engine
from app.queries.articles import Content
from app.queries.prepared import Prepared, on_loop, pair_loop_engine
from app.queries.walks import LIMIT_NAME, walk_select
from app.settings import Settings
from bench.reference_pg import LIST_SQL, fetch, open_pool

WARMUP = 300


async def timed(name: str, call: Callable[[], Awaitable[Any]], calls: int) -> None:
    for _ in range(WARMUP):
        await call()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await call()
    wall_us = (time.perf_counter() - started) / calls * 1e6
    cpu_us = (time.process_time() - cpu) / calls * 1e6
    print(f"{name:<44} {wall_us:7.1f} µs wall {cpu_us:7.1f} µs CPU")


async def main(url: str, calls: int, rounds: int) -> None:
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    loop_engine = make_loop_engine(settings)
    assert loop_engine is not None, "a PostgreSQL URL"
    pair_loop_engine(engine, loop_engine)
    prepared = Prepared.of(walk_select("id", Content.EXCERPT, True, False, []), engine.dialect)
    session = Session(engine)
    pool = await open_pool(url)

    async def ours() -> Any:
        return await on_loop(loop_engine, lambda: prepared.rows(session, {LIMIT_NAME: 21}))

    async def bare() -> Any:
        return await fetch(pool, LIST_SQL, {LIMIT_NAME: 21})

    async def bridged() -> Any:
        return await greenlet_spawn(lambda: await_(bare()))

    try:
        for _ in range(rounds):  # rounds alternate: a burst of other load lands on all three
            await timed("ours (greenlet, SQLAlchemy pool)", ours, calls)
            await timed("psycopg pool from a greenlet", bridged, calls)
            await timed("psycopg pool (the reference's way)", bare, calls)
    finally:
        await pool.close()
        await loop_engine.dispose()
        engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.calls, args.rounds))
