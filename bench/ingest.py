"""Ingestion benchmark: `corpus ingest` against `sqlite-utils insert` on the same file, one run.

    python -m bench.ingest --rows 100000
    python -m bench.ingest --rows 1000000 --backends sqlite

Generates (once, cached under bench/out/) a seeded synthetic JSON Lines file with
app.synth, then loads it with `sqlite-utils insert FRESH.db article FILE --pk article_id
--nl` and with `corpus ingest` into a fresh migrated SQLite database and a fresh PostgreSQL
database. Each tool runs in its own process; its peak RSS is that process's VmHWM. Prints
records/s and the ratio to sqlite-utils: shared hardware is noisy, so only ratios compare.
For SQLite, "data" is the time until the rows are in, before the deferred full-text index
build that `corpus ingest` does for a large first load; "+index" includes that build, and
its second ratio is against `sqlite-utils insert` followed by `sqlite-utils enable-fts` with
our FTS5 tokenizer (read from a migrated database) and triggers, which builds the same index.
Peak RSS is the command's own; "child" is the largest of its child-process readers' (0: none ran).
"""

import argparse
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from app import synth
from app.db import migrate
from tests.databases import PG_ADMIN_URL, pg_admin, pg_url

OUT = Path(__file__).resolve().parent / "out"
# The phases after the rows are in: the deferred title index, then the search index's last
# catch-up (most of the search index is built beside the writes).
INDEX_PHASES = ("building the deferred indexes", "updating the search index")
# Runs `main` and, at exit, writes the process's /proc status (VmHWM: its peak RSS) and
# its reaped children's peak RSS (Child:, kB).
WRAPPER = (
    "import atexit, pathlib, resource, sys\n"
    "status = pathlib.Path('/proc/self/status')\n"
    "report = pathlib.Path(sys.argv.pop(1))\n"
    "child = lambda: resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "atexit.register(lambda: report.write_text(status.read_text() + f'Child: {{child()}}'))\n"
    "from {module} import {function}\n"
    "sys.argv[0] = {name!r}\n"
    "{function}()\n"
)


@dataclass
class Result:
    tool: str
    backend: str
    rows: int
    seconds: float
    peak_rss_mb: float
    data_seconds: float | None = None
    child_rss_mb: float = 0.0


def corpus_file(rows: int) -> Path:
    path = OUT / f"articles-{rows}.jsonl"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        partial = path.with_suffix(".partial")
        started = time.perf_counter()
        synth.write(partial, rows, seed=0)
        partial.rename(path)
        print(f"# generated {path} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return path


def measured(
    module: str, function: str, name: str, args: list[str]
) -> tuple[float, float, float, float]:
    """Run a CLI in its own process: (seconds, seconds until the index phase, peak RSS MB,
    its children's peak RSS MB)."""
    with tempfile.NamedTemporaryFile(prefix="status-") as report:
        code = WRAPPER.format(module=module, function=function, name=name)
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, report.name, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        data_at = None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if data_at is None and any(phase in line for phase in INDEX_PHASES):
                data_at = time.perf_counter() - started
        seconds = time.perf_counter() - started
        if proc.wait() not in (0, 1):
            raise SystemExit(f"{name} failed:\n{''.join(lines[-20:])}")
        status = Path(report.name).read_text()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    child = next(line for line in status.splitlines() if line.startswith("Child:"))
    return seconds, data_at or seconds, int(hwm.split()[1]) / 1024, int(child.split()[1]) / 1024


def fts_tokenizer(work: Path) -> str:
    """The tokenize= option of the FTS5 table our search used before the tantivy index
    (migration 0005 is its last revision): the reference builds that same index."""
    db = work / "tokenizer.db"
    migrate(f"sqlite:///{db}", "0005")
    with sqlite3.connect(db) as connection:
        (sql,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'article_fts'"
        ).fetchone()
    match = re.search(r"tokenize\s*=\s*'([^']*)'", sql)
    assert match, sql
    return match.group(1)


def run_sqlite_utils(path: Path, rows: int, work: Path) -> list[Result]:
    """`sqlite-utils insert`, then `enable-fts` on the same database: the same index as ours."""
    db = work / "sqlite-utils.db"
    args = ["insert", str(db), "article", str(path), "--pk", "article_id", "--nl"]
    seconds, _, rss, _ = measured("sqlite_utils.cli", "cli", "sqlite-utils", args)
    insert = Result("sqlite-utils insert", "sqlite", rows, seconds, rss)
    fts = ["enable-fts", str(db), "article", "title", "content", "--fts5", "--create-triggers"]
    fts += ["--tokenize", fts_tokenizer(work)]
    fts_seconds, _, fts_rss, _ = measured("sqlite_utils.cli", "cli", "sqlite-utils", fts)
    indexed = Result(
        "sqlite-utils +enable-fts", "sqlite", rows, seconds + fts_seconds, max(rss, fts_rss)
    )
    return [insert, indexed]


def run_corpus(path: Path, rows: int, url: str, backend: str) -> Result:
    migrate(url)
    args = ["ingest", "--database-url", url, str(path)]
    seconds, data, rss, child_rss = measured("app.cli", "main", "corpus", args)
    return Result("corpus ingest", backend, rows, seconds, rss, data, child_rss)


def header(rows: int, path: Path) -> None:
    from importlib.metadata import version

    pg = "n/a"
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as connection:
            pg = str(connection.execute(text("SHOW server_version")).scalar())
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - a header must not stop the benchmark
        pg = f"unreachable ({type(exc).__name__})"
    size_mb = path.stat().st_size / 1e6
    print(f"# python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, postgresql {pg}")
    print(f"# sqlite-utils {version('sqlite-utils')}, cpus {os.cpu_count()}, {platform.machine()}")
    print(
        f"# file: {rows} records, {size_mb:.0f} MB JSON Lines ({size_mb * 1e3 / rows:.2f} KB each)"
    )


def report(results: list[Result]) -> None:
    """One line per tool and phase; "vs +enable-fts" compares lines that build the index."""
    reference = next(r for r in results if r.tool == "sqlite-utils insert")
    ref_rate = reference.rows / reference.seconds
    indexed = next(r for r in results if r.tool == "sqlite-utils +enable-fts")
    indexed_rate = indexed.rows / indexed.seconds
    print(
        f"{'tool':<26} {'backend':<10} {'rows':>9} {'seconds':>8} {'records/s':>10} "
        f"{'vs sqlite-utils':>15} {'vs +enable-fts':>14} {'peak RSS MB':>11} {'child MB':>8}"
    )
    for r in results:
        lines = [(r.tool, r.seconds, r is indexed)]
        if r.data_seconds is not None and r.data_seconds < r.seconds:
            lines = [
                (r.tool + " (data)", r.data_seconds, False),
                (r.tool + " (+index)", r.seconds, True),
            ]
        for tool, seconds, with_index in lines:
            rate = r.rows / seconds
            vs_fts = f"{rate / indexed_rate:>13.2f}x" if with_index else f"{'':>14}"
            print(
                f"{tool:<26} {r.backend:<10} {r.rows:>9} {seconds:>8.1f} {rate:>10.0f} "
                f"{rate / ref_rate:>14.2f}x {vs_fts} {r.peak_rss_mb:>11.0f} "
                f"{r.child_rss_mb:>8.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    options = parser.parse_args()
    backends = options.backends.split(",")
    path = corpus_file(options.rows)
    header(options.rows, path)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=OUT) as tmp:
        work = Path(tmp)
        results.extend(run_sqlite_utils(path, options.rows, work))
        if "sqlite" in backends:
            url = f"sqlite:///{work / 'corpus.db'}"
            results.append(run_corpus(path, options.rows, url, "sqlite"))
        if "postgresql" in backends:
            name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
            pg_admin(f'CREATE DATABASE "{name}"')
            try:
                results.append(run_corpus(path, options.rows, pg_url(name), "postgresql"))
            finally:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(results)


if __name__ == "__main__":
    main()
