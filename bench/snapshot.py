"""Time until a new host answers searches: started from a snapshot against from nothing.

    python -m bench.snapshot --rows 1000000 [--delta 10000]
    python -m bench.snapshot --database-url postgresql://... --index-dir DIR [--delta N]

On a PostgreSQL database of `--rows` synthetic articles (made and cached as
bench/list_api.py does, or the one given with its host's index folder), a first host
serves with its index built. Then:

1. from nothing: a new host (`corpus serve`) with an empty index folder; the time from
   starting it until a search answers 200 (searches answer 503 until its index has
   caught up with the database);
2. `corpus index snapshot` of the first host's index while that host serves;
3. `--delta` more articles ingested on the database, so the new host has changes to apply;
4. from the snapshot: a new host whose index folder is the snapshot (and whose vector
   folder is the snapshot's copy of it); the same time.

A host counts as searchable once both keyword search and search by meaning answer.

It prints both times, their ratio, and the snapshot's time and size. The machine is shared:
compare the two figures of one run. The delta stays in the database (ids after its newest).
"""

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.cli import SERVER_LOOP
from app.search.vectors import vectors_path
from bench import libpq_url
from bench.list_api import CORPUS, corpus_file, pg_database
from tests.live import free_port

QUERY = "/v1/articles?q=rogiku&limit=5"  # a word of the synthetic vocabulary
# Searches by meaning answer 503 until the vector index has caught up too.
MEANING = f"{QUERY}&mode=semantic"
START_TIMEOUT_S = 3600.0


def sh(cmd: list[str]) -> str:
    print(f"$ {shlex.join(cmd)}", flush=True)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stderr.strip()


@contextmanager
def host(url: str, index_dir: Path, log: Path) -> Iterator[float]:
    """A host on `index_dir`, once a search answers 200 in every mode it serves (by
    meaning too, unless the host has it off: a 422): the seconds that took."""
    port = free_port()
    cmd = [CORPUS, "serve", "--database-url", url, "--index-dir", str(index_dir)]
    cmd += ["--port", str(port), "--no-access-log"]
    print(f"$ {shlex.join(cmd)} &", flush=True)
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                sys.exit(f"the host exited; see {log}")
            if _answers(port, QUERY, 200) and _answers(port, MEANING, 200, 422):
                break
            if time.monotonic() - started > START_TIMEOUT_S:
                sys.exit(f"no search answered in {START_TIMEOUT_S} s; see {log}")
            time.sleep(0.05)
        yield time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=60)


def _answers(port: int, path: str, *statuses: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code in statuses
    except httpx.TransportError:
        return False


def newest_id(url: str) -> int:
    import psycopg

    with psycopg.connect(libpq_url(url)) as connection:
        found = connection.execute("SELECT max(article_id) FROM article").fetchone()
    return int(found[0] or 0) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database-url", help="a loaded PostgreSQL database (else made)")
    parser.add_argument("--index-dir", type=Path, help="its first host's index folder")
    parser.add_argument("--delta", type=int, default=10_000)
    args = parser.parse_args()
    print(f"# python {platform.python_version()}, {os.cpu_count()} CPUs, loop {SERVER_LOOP}")
    print(f"# load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="corpus-snapshot-") as tmp:
        work = Path(tmp)
        url = args.database_url or pg_database(args.rows, 0, corpus_file(args.rows, 0))
        first = args.index_dir or work / "first-host"
        print(f"# database {url}; first host's index {first}")
        with host(url, work / "from-nothing", work / "nothing.log") as nothing_s:
            print(f"from nothing: searchable after {nothing_s:.1f} s", flush=True)
        shutil.rmtree(work / "from-nothing")

        # The first host serves (its index built now if it has none) while it is copied.
        with host(url, first, work / "first.log") as built_s:
            print(f"first host searchable after {built_s:.1f} s", flush=True)
            snapshot = work / "snapshot"
            started = time.monotonic()
            print(sh([CORPUS, "index", "snapshot", str(snapshot), "--index-dir", str(first)]))
            snapshot_s = time.monotonic() - started
        copies = [snapshot, vectors_path(snapshot)]  # the vector index is copied beside
        size = sum(f.stat().st_size for c in copies if c.exists() for f in c.iterdir())

        if args.delta:
            delta = work / "delta.jsonl"
            first_id = newest_id(url) + 1
            sh([CORPUS, "synth", str(args.delta), "-o", str(delta), "--first-id", str(first_id)])
            # Into the first host's folder, as that host (stopped now) would have applied it.
            sh([CORPUS, "ingest", "--quiet", str(delta), "--database-url", url,
                "--index-dir", str(first)])  # fmt: skip

        with host(url, snapshot, work / "snapshot.log") as from_snapshot_s:
            print(f"from the snapshot: searchable after {from_snapshot_s:.1f} s", flush=True)

    print()
    print(f"{'new host':<34} {'seconds to first search':>24}")
    print(f"{'from nothing':<34} {nothing_s:>24.1f}")
    print(f"{f'from a snapshot (+{args.delta} changes)':<34} {from_snapshot_s:>24.1f}")
    print(f"ratio nothing/snapshot: {nothing_s / from_snapshot_s:.1f}x")
    print(f"snapshot: {snapshot_s:.1f} s, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
