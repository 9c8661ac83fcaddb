"""Load: does the service answer everything under 256 connections and recover right after?

    python -m bench.load [--backend sqlite|postgresql] [--rows 20000] [--workers 1]
                         [--connections 256] [--duration 30] [--baseline 10]
                         [--scenario mix|overload] [--timeout 10]

Seeds a throwaway database, starts `uvicorn --factory app.main:create_app` on loopback,
and drives it with `wrk` (apt-get install wrk): a light baseline, the heavy run, then the
baseline again. It prints requests/s, p50/p99/max latency, non-2xx and 503 counts,
timeouts and other socket errors for each phase. Shared hardware is noisy: compare the
phases of one run, not runs of different days.

Scenarios: `mix` spreads requests over list, detail and source URLs; `overload` sends
every request to `/v1/articles?limit=20` with wrk's timeout at 5 s, the check of the
load-shedding promise: each request gets its page or a 503 with Retry-After within about
CORPUS_QUEUE_TIMEOUT_S plus one request's work, so no request reaches the timeout:

    python -m bench.load --scenario overload --duration 15 [--workers 2]
"""

import argparse
import os
import platform
import re
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import sqlalchemy
import uvicorn

from app.db import make_engine, migrate
from app.ingest.pipeline import ingest
from app.settings import Settings
from bench import require_wrk
from tests.live import serve

PG_ADMIN_URL = os.environ.get(
    "PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SOURCES = 20

# wrk counts only "non-2xx"; this script also tallies each status across threads.
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} ; n = 0 end
local paths = {PATHS}
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
response = function(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
done = function(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("counts")) do total[status] = (total[status] or 0) + count end
  end
  for status, count in pairs(total) do io.write(string.format("status %d %d\\n", status, count)) end
end
"""


@dataclass
class Phase:
    name: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    socket_errors: int  # connect, read and write errors
    timeouts: int  # requests unanswered after wrk's --timeout

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


def seed(url: str, rows: int, workdir: Path) -> None:
    migrate(url)
    path = workdir / "corpus.jsonl"
    with path.open("wb") as out:
        for article_id in range(1, rows + 1):
            words = " ".join(f"word{(article_id * k) % 997}" for k in range(1, 300))
            record = {
                "article_id": article_id,
                "source_id": article_id % SOURCES + 1,
                "title": f"Article {article_id}",
                "content": words,
            }
            out.write(orjson.dumps(record) + b"\n")
    engine = make_engine(Settings(database_url=url), pooled=False)
    try:
        ingest([path], engine, on_reject=print)
    finally:
        engine.dispose()


def database(backend: str, workdir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'load.db'}"
    name = f"corpus_load_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sqlalchemy.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)


def drop(url: str) -> None:
    if url.startswith("sqlite"):
        return
    name = sqlalchemy.engine.make_url(url).database
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run_wrk(
    name: str, base: str, script: Path, connections: int, duration_s: int, timeout_s: int
) -> Phase:
    command = [
        "wrk",
        "--threads",
        "2",
        "--connections",
        str(connections),
        "--duration",
        f"{duration_s}s",
        "--timeout",
        f"{timeout_s}s",
        "--latency",
        "--script",
        str(script),
        base,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Phase(
        name=name,
        connections=connections,
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        # wrk's "Latency  avg  stdev  max  +/- stdev" line.
        max_ms=_ms(re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        statuses={int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)},
        socket_errors=sum(int(n) for n in errors.groups()[:3]) if errors else 0,
        timeouts=int(errors.group(4)) if errors else 0,
    )


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--baseline", type=int, default=10)
    parser.add_argument("--baseline-connections", type=int, default=8)
    parser.add_argument("--scenario", choices=["mix", "overload"], default="mix")
    parser.add_argument(
        "--timeout", type=int, default=None, help="wrk's --timeout in s (mix 10, overload 5)"
    )
    args = parser.parse_args()
    timeout_s = args.timeout or (5 if args.scenario == "overload" else 10)
    require_wrk()

    print(
        f"# python {platform.python_version()}, uvicorn {uvicorn.__version__}, "
        f"{os.cpu_count()} CPUs, backend {args.backend}, {args.rows} rows, "
        f"{args.workers} worker(s), scenario {args.scenario}, wrk --timeout {timeout_s}s"
    )
    with tempfile.TemporaryDirectory(prefix="corpus-load-") as tmp:
        workdir = Path(tmp)
        url = database(args.backend, workdir)
        try:
            seed(url, args.rows, workdir)
            paths = ["/v1/articles?limit=20"]
            if args.scenario == "mix":
                paths += [
                    f"/v1/articles/{args.rows // 2}",
                    "/v1/articles?limit=50&source_id=3",
                    "/v1/sources",
                    f"/v1/articles/{args.rows // 3}",
                    "/v1/sources/7/articles?limit=20",
                ]
            script = workdir / "mix.lua"
            script.write_text(
                WRK_SCRIPT.replace("{PATHS}", "{" + ", ".join(f'"{p}"' for p in paths) + "}")
            )
            env = {"CORPUS_ACCESS_LOG": "false"}
            with serve(url, workers=args.workers, env=env) as server:
                light, heavy = args.baseline_connections, args.connections
                phases = [
                    run_wrk("before", server.url, script, light, args.baseline, timeout_s),
                    run_wrk("during", server.url, script, heavy, args.duration, timeout_s),
                    run_wrk("after", server.url, script, light, args.baseline, timeout_s),
                ]
        finally:
            drop(url)
    print(
        f"{'phase':<8} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'non-2xx':>8} {'503':>6} {'timeouts':>8} {'sock err':>8}  statuses"
    )
    for p in phases:
        print(
            f"{p.name:<8} {p.connections:>5} {p.requests_per_s:>9.0f} {p.p50_ms:>8.1f} "
            f"{p.p99_ms:>8.1f} {p.max_ms:>8.1f} {p.non_2xx:>8} {p.statuses.get(503, 0):>6} "
            f"{p.timeouts:>8} {p.socket_errors:>8}  {dict(sorted(p.statuses.items()))}"
        )
    after, before = phases[2], phases[0]
    print(f"after/before req/s: {after.requests_per_s / before.requests_per_s:.2f}")


if __name__ == "__main__":
    main()
