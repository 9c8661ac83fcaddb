"""Browse and search speed of the article API against a bare Starlette reference.

    python -m bench.list_api --rows 1000000 [--backend sqlite|postgresql]

Generates a synthetic corpus with `corpus synth`, loads it with `corpus ingest` (both
cached under bench/out/, keyed by rows and seed: delete them to start over), serves it
with `corpus serve --no-access-log` (uvicorn, one worker) and, on the same uvicorn, a bare
Starlette app that returns a precomputed JSON body of the same size as each of our
responses. Both are driven over loopback by `wrk -t2 -c32 -d10s --latency` after a
warm-up, once the database has been read into the OS page cache (as a server's would be
after a while up). The machine is shared and noisy, so throughput is reported as a ratio to the
reference measured in the same run; latency targets are absolute, so the reference's p95
is printed beside ours. Every command run is printed.

Search totals, facets, whole rankings and the whole reply of a search are cached per data
revision (app/queries/cache.py, app/api/articles.py), so the wrk runs, which repeat one URL,
measure a search served from that cache (one index probe for the revision); the lines after
the table give the cost of the first request for five words of each frequency, before
anything about them is cached.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import httpx
import orjson

from app.cli import SERVER_LOOP
from bench import require_wrk
from bench.ingest_memory import cpu_s
from bench.pagecache import warm_database

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
CORPUS = str(Path(sys.executable).with_name("corpus"))
PG_ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WORD = re.compile(r"[^\W_]+")
COMMON_DF, RARE_DF = 0.07, 0.0005  # document frequency of the "common" and "rare" words
PAGE = 10_000
PAIRED_ROUNDS = 3

# Prints one JSON line when wrk finishes; with BENCH_RANDOM_ID_MAX set, each request asks
# for a random article id (under BENCH_PATH_PREFIX), so detail reads are not one hot row.
WRK_LUA = """
local max_id = tonumber(os.getenv("BENCH_RANDOM_ID_MAX") or "")
local prefix = os.getenv("BENCH_PATH_PREFIX") or ""
if max_id then
  setup = function(thread) thread:set("seed", math.random(1, 1000000)) end
  init = function(args) math.randomseed(seed or os.time()) end
  request = function()
    return wrk.format("GET", prefix .. "/v1/articles/" .. math.random(1, max_id))
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, ' ..
    '"p99_us": %d, "non2xx": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class Run:
    rps: float
    p50_ms: float
    p95_ms: float
    non2xx: int
    errors: int
    # The server's CPU (user + system) per request over the run, in µs, when its pid was
    # given: on a shared machine it drifts far less than requests a second do.
    cpu_us: float | None = None


def sh(cmd: Sequence[str], env: dict[str, str] | None = None, quiet: bool = False) -> str:
    """Run and print a command; its stdout."""
    prefix = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    print(f"$ {prefix + ' ' if prefix else ''}{shlex.join(cmd)}", flush=True)
    result = subprocess.run(
        cmd,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
    )
    return result.stdout


def header(args: argparse.Namespace, url: str) -> None:
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "pydantic", "orjson")
    )
    wrk = "wrk missing"
    if shutil.which("wrk"):
        version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
        wrk = " ".join(version.split()[:2])
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {versions}")
    print(f"{wrk}; cpus {os.cpu_count()}; load average {os.getloadavg()}")
    print(f"backend {args.backend}, rows {args.rows:,}, seed {args.seed}, database {url}")


# -- Data: generated and loaded once per (rows, seed) --------------------------------------------


def corpus_file(rows: int, seed: int) -> Path:
    path = OUT / f"corpus-{rows}-s{seed}.jsonl"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        sh([CORPUS, "synth", str(rows), "-o", str(partial), "--seed", str(seed)])
        partial.rename(path)
    return path


def sqlite_database(rows: int, seed: int, data: Path) -> str:
    path = OUT / f"sqlite-{rows}-s{seed}.db"
    if not path.exists():
        loading = OUT / f"sqlite-{rows}-s{seed}.loading.db"
        for stale in OUT.glob(loading.name + "*"):
            stale.unlink()
        url = f"sqlite:///{loading}"
        sh([CORPUS, "migrate", "--database-url", url])
        sh([CORPUS, "ingest", str(data), "--database-url", url, "--batch-size", "5000"])
        connection = sqlite3.connect(loading)
        try:
            connection.execute("ANALYZE")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        loading.rename(path)
        for stale in OUT.glob(loading.name + "-*"):
            stale.unlink()
        # The search and vector indexes the load built sit beside the file, named after
        # it: move them along, or the server would build others before it answers searches.
        for suffix in (".index", ".vectors"):
            index = loading.with_name(loading.stem + suffix)
            if index.exists():
                index.rename(path.with_name(path.stem + suffix))
            loading.with_name(index.name + ".lock").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def pg_database(rows: int, seed: int, data: Path) -> str:
    import psycopg

    name = f"bench_{rows}_s{seed}"
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        done = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        if done is not None and done[0] == "loaded":
            return url
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    sh([CORPUS, "migrate", "--database-url", url])
    sh([CORPUS, "ingest", str(data), "--database-url", url, "--batch-size", "5000"])
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE article")
        connection.execute(f"COMMENT ON DATABASE \"{name}\" IS 'loaded'")
    return url


def pick_words(data: Path, rows: int) -> tuple[list[str], list[str]]:
    """Five words near COMMON_DF and five near RARE_DF, from a sample of the corpus."""
    sample = min(rows, 20_000)
    df: Counter[str] = Counter()
    with data.open("rb") as f:
        for _, line in zip(range(sample), f, strict=False):
            doc = orjson.loads(line)
            df.update({w.lower() for w in WORD.findall(f"{doc['title']} {doc['content']}")})

    def near(share: float) -> list[str]:
        ranked = sorted(df, key=lambda w: (abs(df[w] / sample - share), w))
        return ranked[:5]

    return near(COMMON_DF), near(RARE_DF)


# -- Servers and load --------------------------------------------------------------------------


# Production settings: the defaults, with the access log off (uvicorn's and ours).
SERVE_ENV = {"CORPUS_ACCESS_LOG": "false"}


def serve(url: str, port: int) -> list[str]:
    """`corpus serve` of `url` on `port`, as every server of ours here runs."""
    return [CORPUS, "serve", "--database-url", url, "--port", str(port), "--no-access-log"]


@contextmanager
def server(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[int]:
    """Start a server, wait until it answers, yield its pid, stop it."""
    print(f"$ {' '.join(f'{k}={v}' for k, v in env.items())} {shlex.join(cmd)} &", flush=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 3600  # a first start builds its indexes
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {log}")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _ready(port: int) -> bool:
    """The server answers, and ours has its search and vector indexes caught up (searches
    answer 503 until they have, and a server building one is busy); the reference has no
    /readyz."""
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
    except httpx.TransportError:
        return False
    if ready.status_code == 404:
        return True
    if ready.status_code != 200:
        return False
    states = [ready.json().get("search_index"), ready.json().get("vector_index")]
    return all(state is None or state.get("state") == "ready" for state in states)


class RssSampler:
    """Peak VmRSS and peak RssAnon of one process while load runs. RssAnon is its private
    memory: RSS also counts the pages of the index and vector files it maps, which are the
    host's page cache, shared by every worker."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self.private_kb = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                elif line.startswith("RssAnon:"):
                    self.private_kb = max(self.private_kb, int(line.split()[1]))
            self._stop.wait(0.1)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wrk(
    args: argparse.Namespace,
    url: str,
    lua: Path,
    env: dict[str, str],
    seconds: int,
    key: str | None = None,
    pid: int | None = None,
) -> Run:
    cmd = [
        "wrk",
        *(["-H", f"X-API-Key: {key}"] if key else []),
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(lua.relative_to(REPO)),
        url,
    ]
    before = cpu_s(pid) if pid is not None else 0.0
    out = sh(cmd, env)
    used = cpu_s(pid) - before if pid is not None else None
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        non2xx=data["non2xx"],
        errors=data["errors"],
        cpu_us=None if used is None else used / max(1, data["requests"]) * 1e6,
    )


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: str  # ours; for a random detail read, the base path only
    size: int  # bytes of our response, for the reference's body
    random_ids: bool = False


def measure_bodies(base: str, rows: int, paths: dict[str, str]) -> dict[str, int]:
    sizes = {}
    with httpx.Client(base_url=base) as client:
        for name, path in paths.items():
            response = client.get(path)
            response.raise_for_status()
            sizes[name] = len(response.content)
        details = [len(client.get(f"/v1/articles/{i}").content) for i in range(1, rows, rows // 50)]
        sizes["detail"] = int(statistics.mean(details))
        sizes["health"] = len(client.get("/healthz").content)
    return sizes


def walk_to_page(base: str, page: int) -> str:
    """The URL of page `page` (limit 20), reached by following `next` from the first page."""
    started = time.perf_counter()
    url = "/v1/articles?limit=20"
    with httpx.Client(base_url=base) as client:
        for _ in range(page - 1):
            url = client.get(url).json()["next"]
    print(f"walked to page {page:,} by cursor in {time.perf_counter() - started:.1f}s")
    return url


def cold(base: str, words: list[str]) -> tuple[list[float], list[int]]:
    """First-request latency (ms) of each word's search with count=exact, and its total."""
    times, totals = [], []
    with httpx.Client(base_url=base, timeout=60) as client:
        client.get("/healthz")
        for word in words:
            started = time.perf_counter()
            body = client.get("/v1/articles", params={"q": word, "count": "exact"}).json()
            times.append((time.perf_counter() - started) * 1000)
            totals.append(body["total"])
    return times, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per case")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--ref-port", type=int, default=8702)
    parser.add_argument(
        "--prepare-only", action="store_true", help="generate and load the data, then stop"
    )
    args = parser.parse_args()
    if not args.prepare_only:
        require_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    data = corpus_file(args.rows, args.seed)
    if args.backend == "sqlite":
        url = sqlite_database(args.rows, args.seed, data)
    else:
        url = pg_database(args.rows, args.seed, data)
    header(args, url)
    if args.prepare_only:
        return
    warm_database(url)
    common, rare = pick_words(data, args.rows)
    lua = OUT / "report.lua"
    lua.write_text(WRK_LUA)
    ours = f"http://127.0.0.1:{args.port}"
    with server(serve(url, args.port), args.port, SERVE_ENV, OUT / "ours.log") as pid:
        common_cold, common_totals = cold(ours, common)
        rare_cold, rare_totals = cold(ours, rare)
        page = min(PAGE, max(2, args.rows // 40))  # page 10,000 needs 200k rows
        deep = walk_to_page(ours, page)
        paths = {
            "list, first page": "/v1/articles",
            f"list, page {page:,} by cursor": deep,
            f"search common '{common[0]}', count=exact": f"/v1/articles?q={common[0]}&count=exact",
            f"search rare '{rare[0]}', count=exact": f"/v1/articles?q={rare[0]}&count=exact",
        }
        sizes = measure_bodies(ours, args.rows, paths)
        cases = [Case(name, path, sizes[name]) for name, path in paths.items()]
        cases.insert(2, Case("detail by random id", "/", sizes["detail"], random_ids=True))
        # No database, no target: what the middleware stack and uvicorn alone cost.
        cases.append(Case("healthz (floor: the stack, no database)", "/healthz", sizes["health"]))
        ref_env = {"BENCH_REF_SIZES": ",".join(str(c.size) for c in cases)}
        # On the event loop `corpus serve` uses, so that only the apps differ.
        reference = [sys.executable, "-m", "uvicorn", "bench.reference:app", "--loop", SERVER_LOOP]
        reference += ["--port", str(args.ref_port), "--no-access-log", "--log-level", "warning"]
        results: dict[str, tuple[Run, Run]] = {}
        with (
            server(reference, args.ref_port, ref_env, OUT / "reference.log"),
            RssSampler(pid) as rss,
        ):
            for case in cases:
                env = {"BENCH_RANDOM_ID_MAX": str(args.rows)} if case.random_ids else {}
                ref_url = f"http://127.0.0.1:{args.ref_port}/{case.size}"
                ref_env_case = {**env, "BENCH_PATH_PREFIX": f"/{case.size}"} if env else {}
                ours_url = ours + case.path
                if not case.random_ids:
                    ref_url += "/x"
                wrk(args, ours_url, lua, env, args.warmup)
                wrk(args, ref_url, lua, ref_env_case, args.warmup)
                results[case.name] = (
                    wrk(args, ours_url, lua, env, args.duration),
                    wrk(args, ref_url, lua, ref_env_case, args.duration),
                )
        keyed = keys_on(args, url, cases, lua)
        same_sql = (
            pg_reference(args, url, cases, lua, ours, pid) if args.backend == "postgresql" else {}
        )
    report(
        cases,
        results,
        keyed,
        (rss.peak_kb, rss.private_kb),
        (common, common_cold, common_totals),
        (rare, rare_cold, rare_totals),
        args,
        same_sql,
    )


def keys_on(
    args: argparse.Namespace, url: str, cases: list[Case], lua: Path
) -> dict[str, tuple[Run, Run]]:
    """List and detail with CORPUS_AUTH=keys (a key whose rate is never reached) against
    the same without keys, measured back to back: (keys on, keys off) per case, the best of
    PAIRED_ROUNDS alternating rounds each (requests a second and CPU per request, each at
    its best), as a shared machine's load comes and goes. Both servers start here and are
    warmed alike: a keyed server started fresh against one that has served the whole run
    compared more than the key check (its detail pair read 0.80-0.87x where in process the
    key check costs ~14 µs of ~56)."""
    sh([CORPUS, "migrate", "--database-url", url])
    made = sh([CORPUS, "keys", "create", "--name", "bench", "--rate", "1000000000/minute",
               "--database-url", url, "--json"], quiet=True)  # fmt: skip
    key = json.loads(made)["key"]
    on_port, off_port = args.port + 2, args.port + 3
    keyed_env = {**SERVE_ENV, "CORPUS_AUTH": "keys"}
    keyed: dict[str, tuple[Run, Run]] = {}
    with (
        server(serve(url, on_port), on_port, keyed_env, OUT / "keys.log") as on_pid,
        server(serve(url, off_port), off_port, SERVE_ENV, OUT / "nokeys.log") as off_pid,
    ):
        for case in cases:
            if not case.name.startswith(("list, first", "detail")):
                continue
            run_env = {"BENCH_RANDOM_ID_MAX": str(args.rows)} if case.random_ids else {}
            on_url = f"http://127.0.0.1:{on_port}{case.path}"
            off_url = f"http://127.0.0.1:{off_port}{case.path}"
            wrk(args, on_url, lua, run_env, args.warmup, key=key)
            wrk(args, off_url, lua, run_env, args.warmup)
            rounds = [
                (
                    wrk(args, on_url, lua, run_env, args.duration, key=key, pid=on_pid),
                    wrk(args, off_url, lua, run_env, args.duration, pid=off_pid),
                )
                for _ in range(PAIRED_ROUNDS)
            ]
            keyed[case.name] = (_best([on for on, _ in rounds]), _best([off for _, off in rounds]))
    return keyed


def _best(runs: list[Run]) -> Run:
    """The run with the most requests a second, carrying the least CPU per request of all."""
    cpu = [run.cpu_us for run in runs if run.cpu_us is not None]
    return replace(max(runs, key=lambda run: run.rps), cpu_us=min(cpu) if cpu else None)


def pg_reference(
    args: argparse.Namespace, url: str, cases: list[Case], lua: Path, ours: str, ours_pid: int
) -> dict[str, tuple[Run, Run]]:
    """List and detail against bench/reference_pg.py (the same SQL through a bare Starlette
    app with an async psycopg pool and orjson), back to back with ours: (ours, reference)
    per case, the best of PAIRED_ROUNDS alternating rounds each, as for keys_on."""
    port = args.port + 3
    reference = [sys.executable, "-m", "uvicorn", "bench.reference_pg:app", "--loop", SERVER_LOOP]
    reference += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    found: dict[str, tuple[Run, Run]] = {}
    with server(reference, port, {"BENCH_PG_URL": url}, OUT / "reference_pg.log") as ref_pid:
        for case in cases:
            if not case.name.startswith(("list, first", "detail")):
                continue
            env = {"BENCH_RANDOM_ID_MAX": str(args.rows)} if case.random_ids else {}
            mine, theirs = ours + case.path, f"http://127.0.0.1:{port}{case.path}"
            wrk(args, mine, lua, env, args.warmup)
            wrk(args, theirs, lua, env, args.warmup)
            rounds = [
                (
                    wrk(args, mine, lua, env, args.duration, pid=ours_pid),
                    wrk(args, theirs, lua, env, args.duration, pid=ref_pid),
                )
                for _ in range(PAIRED_ROUNDS)
            ]
            found[case.name] = (_best([m for m, _ in rounds]), _best([t for _, t in rounds]))
    return found


def report(
    cases: list[Case],
    results: dict[str, tuple[Run, Run]],
    keyed: dict[str, tuple[Run, Run]],
    rss_kb: tuple[int, int],
    common: tuple[list[str], list[float], list[int]],
    rare: tuple[list[str], list[float], list[int]],
    args: argparse.Namespace,
    same_sql: dict[str, tuple[Run, Run]] | None = None,
) -> None:
    first = results[cases[0].name][0]
    print()
    print(
        f"{'case':<44} {'bytes':>7} {'ours r/s':>9} {'ref r/s':>9} {'ratio':>6} "
        f"{'p50 ours':>9} {'p95 ours':>9} {'p95 ref':>8}  {'target':<28} result"
    )
    for case in cases:
        mine, ref = results[case.name]
        ratio = mine.rps / ref.rps
        if case.name.startswith("list, first"):
            target, ok = ">= 0.25x ref r/s", ratio >= 0.25
        elif case.name.startswith("list, page"):
            slower = mine.p50_ms / first.p50_ms
            target, ok = f"p50 <= 1.2x first ({slower:.2f}x)", slower <= 1.2
        elif case.name.startswith("detail"):
            target, ok = ">= 0.35x ref r/s", ratio >= 0.35
        elif case.name.startswith("search common"):
            target, ok = "p95 < 50 ms", mine.p95_ms < 50
        elif case.name.startswith("healthz"):
            target, ok = "(none: for reference)", True
        else:
            target, ok = "p95 < 10 ms", mine.p95_ms < 10
        bad = (
            f" ({mine.non2xx} non-2xx, {mine.errors} errors)" if mine.non2xx or mine.errors else ""
        )
        print(
            f"{case.name:<44} {case.size:>7} {mine.rps:>9.0f} {ref.rps:>9.0f} {ratio:>5.2f}x "
            f"{mine.p50_ms:>7.2f}ms {mine.p95_ms:>7.2f}ms {ref.p95_ms:>6.2f}ms  {target:<28} "
            f"{'PASS' if ok and not bad else 'FAIL'}{bad}"
        )
    for name, (on, off) in keyed.items():
        ratio = on.rps / off.rps
        bad = f" ({on.non2xx} non-2xx, {on.errors} errors)" if on.non2xx or on.errors else ""
        print(
            f"{'keys on: ' + name:<44} {'':>7} {on.rps:>9.0f} {off.rps:>9.0f} {ratio:>5.2f}x "
            f"{on.p50_ms:>7.2f}ms {on.p95_ms:>7.2f}ms {off.p95_ms:>6.2f}ms  "
            f"{'>= 0.90x keys off r/s':<28} {'PASS' if ratio >= 0.9 and not bad else 'FAIL'}{bad}"
        )
    for name, (mine, theirs) in (same_sql or {}).items():
        ratio = mine.rps / theirs.rps
        print(
            f"{'same SQL, bare psycopg: ' + name:<44} {'':>7} {mine.rps:>9.0f} {theirs.rps:>9.0f} "
            f"{ratio:>5.2f}x {mine.p50_ms:>7.2f}ms {mine.p95_ms:>7.2f}ms {theirs.p95_ms:>6.2f}ms  "
            f"{'>= 0.60x reference r/s':<28} {'PASS' if ratio >= 0.6 else 'FAIL'}"
        )
    _report_cpu(keyed, same_sql or {})
    rss_mb, private_mb = rss_kb[0] / 1024, rss_kb[1] / 1024
    print(f"{'peak RSS of our worker under load':<44} {rss_mb:>7.0f} MB (with mapped index pages)")
    print(
        f"{'peak private memory (RssAnon) under load':<44} {private_mb:>7.0f} MB{'':>58}< 200 MB"
        f"{'':>21}{'PASS' if private_mb < 200 else 'FAIL'}"
    )
    print(f"load average after the run: {os.getloadavg()} (cpus {os.cpu_count()})")
    print()
    for label, (words, times, totals) in (("common", common), ("rare", rare)):
        print(
            f"{label} words (document frequency at {args.rows:,} rows), first request "
            "uncached, ms: "
            + ", ".join(
                f"{w} df={t:,} {ms:.0f}" for w, t, ms in zip(words, totals, times, strict=True)
            )
        )


def _report_cpu(keyed: dict[str, tuple[Run, Run]], same_sql: dict[str, tuple[Run, Run]]) -> None:
    """The server's CPU per request in the paired runs: the steadier measure of what a
    request costs when the machine's speed drifts (a saturated server answers about one
    request per its CPU per request)."""
    rows = [("keys on / off: " + name, on, off) for name, (on, off) in keyed.items()]
    rows += [("ours / bare psycopg: " + name, mine, ref) for name, (mine, ref) in same_sql.items()]
    for label, first, second in rows:
        if first.cpu_us is None or second.cpu_us is None:
            continue
        print(
            f"{'server CPU per request, ' + label:<64} {first.cpu_us:>6.0f} / "
            f"{second.cpu_us:<6.0f} µs  ratio {second.cpu_us / first.cpu_us:.2f}x"
        )


if __name__ == "__main__":
    main()
