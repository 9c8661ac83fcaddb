"""The API through PgBouncer in transaction mode against the API on a direct connection.

    python -m bench.pooler [--rows 20000] [--workers 2] [--connections 32] [--duration 10]
                           [--server-connections 8]

Seeds a throwaway PostgreSQL database (as bench/load.py does), starts PgBouncer in
transaction mode with `--server-connections` server connections (tests/pgbouncer.py:
Debian's `pgbouncer`), and serves the same database twice in turn with `--workers`
workers: on its direct URL (the reference) and through the pooler. Each is driven by
`wrk` with the same mix of list and detail URLs (what clients ask most), after a warm-up.
It prints requests/s, p50/p99 latency, non-2xx answers and socket errors for both, and
the pooled run's requests/s as a ratio to the direct one. Through the pooler every
answer must be a 200: a prepared statement, a SET or a temporary table that outlived its
transaction showed up here as 500s.
"""

import argparse
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from bench import require_wrk
from bench.load import WRK_SCRIPT, Phase, database, drop, run_wrk, seed
from tests.live import serve
from tests.pgbouncer import run_pgbouncer

WARM_UP_S = 3


def paths(rows: int) -> list[str]:
    return [
        "/v1/articles?limit=20",
        f"/v1/articles/{rows // 2}",
        "/v1/articles?limit=50&source_id=3",
        f"/v1/articles/{rows // 3}",
        "/v1/sources/7/articles?limit=20",
        f"/v1/articles/{rows // 5}",
    ]


def measure(url: str, name: str, args: argparse.Namespace, script: Path) -> Phase:
    with serve(url, workers=args.workers, env={"CORPUS_ACCESS_LOG": "false"}) as server:
        run_wrk("warm-up", server.url, script, args.connections, WARM_UP_S, 10)
        phase = run_wrk(name, server.url, script, args.connections, args.duration, 10)
        log = server.log_text()
    if "Traceback" in log:
        print(f"{name}: the server logged errors:\n{log[-2000:]}")
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--server-connections", type=int, default=8)
    args = parser.parse_args()
    require_wrk()
    version = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True)
    print(
        f"# python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{version.stdout.splitlines()[0]}, {args.rows} rows, {args.workers} worker(s), "
        f"wrk -c{args.connections} -d{args.duration}s, "
        f"{args.server_connections} server connections, load average {os.getloadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="corpus-pooler-") as tmp:
        work = Path(tmp)
        url = database("postgresql", work)
        try:
            seed(url, args.rows, work)
            script = work / "mix.lua"
            listed = ", ".join(f'"{p}"' for p in paths(args.rows))
            script.write_text(WRK_SCRIPT.replace("{PATHS}", "{" + listed + "}"))
            direct = measure(url, "direct", args, script)
            with run_pgbouncer(args.server_connections) as pooler:
                pooled = measure(pooler.url(url), "pgbouncer", args, script)
        finally:
            drop(url)
    print(
        f"{'':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}"
        "  statuses"
    )
    for p in (direct, pooled):
        print(
            f"{p.name:<10} {p.requests_per_s:>9.0f} {p.p50_ms:>8.1f} {p.p99_ms:>8.1f} "
            f"{p.non_2xx:>8} {p.socket_errors + p.timeouts:>8}  {dict(sorted(p.statuses.items()))}"
        )
    print(f"pgbouncer/direct req/s: {pooled.requests_per_s / direct.requests_per_s:.2f}")


if __name__ == "__main__":
    main()
