"""CPU cost of one request, in process: our app against the bare reference, no network.

    python -m bench.inprocess --database-url sqlite:///bench/out/sqlite-1000000-s0.db

Calls each ASGI app directly (the full middleware stack, no uvicorn, no sockets) for a few
paths and prints the best mean of several rounds in µs per request, beside the reference
app of bench/reference.py measured in the same run. Far less noisy than wrk on a shared
machine, so it is the quick check of a change on the request path; bench/list_api.py
remains the measure of record. Searches repeat one URL, so after the first they are
served from the per-revision reply cache.

The `keys on` column is the same request to an app with CORPUS_AUTH=keys, sending a key
(made in the database for the run, with a rate it never reaches; memory limiter): the
difference is what the key check, the rate limit and its headers cost per request.

On PostgreSQL it then runs the list's first page and a detail by id against
bench/reference_pg.py's app (the same SQL through a bare async psycopg pool), both on this
loop, rounds alternating, and prints the CPU of a call (this process only: the database
server's work is the same on both sides) and their ratio. Without uvicorn and sockets,
which cost both sides alike, the ratio reads lower than bench/list_api.py's; its use is to
compare two versions of our code on a noisy machine.
"""

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message

PATHS = [
    ("/healthz", ""),
    ("/v1/articles", ""),
    ("/v1/articles", "limit=20&source_id=3"),
    ("/v1/articles/12345", ""),
    ("/v1/articles", "q={word}&count=exact"),
]


async def call(
    app: ASGIApp, path: str, query: str, headers: list[tuple[bytes, bytes]] | None = None
) -> list[Message]:
    """One GET through `app`, as uvicorn would make it; the messages sent back."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def mean_us(
    app: ASGIApp,
    path: str,
    query: str,
    calls: int,
    headers: list[tuple[bytes, bytes]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, list[Message]]:
    """The mean µs of `calls` calls by `clock` (wall time by default); the last reply."""
    started = clock()
    for _ in range(calls):
        sent = await call(app, path, query, headers)
    return (clock() - started) / calls * 1e6, sent


async def best_us(
    app: ASGIApp,
    path: str,
    query: str,
    rounds: int,
    per_round: int,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[float, list[Message]]:
    """The best mean µs per call over `rounds` rounds, after a warm-up; the last reply."""
    await mean_us(app, path, query, per_round, headers)
    best = float("inf")
    for _ in range(rounds):
        us, sent = await mean_us(app, path, query, per_round, headers)
        best = min(best, us)
    return best, sent


async def main(database_url: str, word: str, rounds: int, per_round: int) -> None:
    os.environ.setdefault("BENCH_REF_SIZES", "1000")
    from app.main import create_app
    from app.settings import Settings
    from bench.reference import app as reference

    ref_us, _ = await best_us(reference, "/1000/x", "", rounds, per_round)
    app = create_app(Settings(database_url=database_url, access_log=False))
    keyed = create_app(Settings(database_url=database_url, access_log=False, auth="keys"))
    key = [(b"x-api-key", bench_key(database_url).encode())]
    async with app.router.lifespan_context(app), keyed.router.lifespan_context(keyed):
        print(
            f"{'request':<44} {'status':>6} {'bytes':>7} {'µs':>8} {'x ref':>7} "
            f"{'keys on':>8} {'+µs':>6}"
        )
        for path, template in PATHS:
            query = template.format(word=word)
            us, sent = await best_us(app, path, query, rounds, per_round)
            on_us, on_sent = await best_us(keyed, path, query, rounds, per_round, key)
            assert on_sent[0]["status"] == sent[0]["status"], on_sent[0]
            target = f"{path}?{query}" if query else path
            status, size = sent[0]["status"], len(sent[-1].get("body", b""))
            print(
                f"{target:<44} {status:>6} {size:>7} {us:>8.0f} {us / ref_us:>6.1f}x "
                f"{on_us:>8.0f} {on_us - us:>+6.0f}"
            )
    print(f"{'reference (bare Starlette, 1000 bytes)':<44} {200:>6} {1000:>7} {ref_us:>8.0f}")
    if database_url.startswith("postgresql"):
        await against_bare_psycopg(database_url, rounds, per_round)


async def against_bare_psycopg(database_url: str, rounds: int, per_round: int) -> None:
    """CPU µs of a call, ours against bench/reference_pg.py's app, rounds alternating."""
    os.environ["BENCH_PG_URL"] = database_url
    from app.main import create_app
    from app.settings import Settings
    from bench.reference_pg import app as bare

    ours = create_app(Settings(database_url=database_url, access_log=False))
    paths = [("list, first page", "/v1/articles"), ("detail", "/v1/articles/12345")]
    best: dict[tuple[str, str], float] = {}
    async with ours.router.lifespan_context(ours), bare.router.lifespan_context(bare):
        apps = {"ours": ours, "bare psycopg": bare}
        for r in range(rounds):
            for name, app in apps.items() if r % 2 == 0 else reversed(apps.items()):
                for label, path in paths:
                    await mean_us(app, path, "", max(1, per_round // 3))  # warm: pools, statements
                    us, sent = await mean_us(app, path, "", per_round, clock=time.process_time)
                    assert sent[0]["status"] == 200, (name, path, sent[0])
                    best[(name, label)] = min(best.get((name, label), us), us)
    print(f"\n{'CPU µs a call, in process':<44} {'ours':>8} {'bare':>8} {'ratio':>7}")
    for label, _ in paths:
        mine, theirs = best[("ours", label)], best[("bare psycopg", label)]
        print(f"{label:<44} {mine:>8.0f} {theirs:>8.0f} {theirs / mine:>6.2f}x")


def bench_key(database_url: str) -> str:
    """A key for this run, in the database (migrated first), with a rate it never reaches."""
    from sqlmodel import Session

    from app.db import make_engine, migrate
    from app.queries.keys import create_key
    from app.settings import Settings

    migrate(database_url)
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    with Session(engine) as session:
        key, _ = create_key(session, name="bench", rate="1000000000/minute", expires_at=None)
    engine.dispose()
    return key


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--word", default="ragi", help="searched for (common at seed 0)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.word, args.rounds, args.per_round))
