"""The article table's files in the OS page cache, before a read benchmark measures them.

Some machines (this project's shared one) drop the cached pages of files no process maps
within minutes, with most of the memory free: at a million articles a page of 20 hits then
reads its rows from disk (on SQLite, semantic p95 23.1 ms with 24% of the file cached,
17.1 ms with all of it; a random detail 60 µs cold, 10 warm), and the bare references have
no disk to read. A serving host whose database fits in memory holds those pages, so the
read benchmarks read them once first, and print how much the cache held before.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench import libpq_url

# The article table, its TOAST table (the bodies) and every index of either.
RELATIONS = """
    SELECT c.oid::regclass::text, pg_relation_filepath(c.oid) FROM pg_class c
    WHERE c.oid IN (SELECT 'article'::regclass
                    UNION SELECT reltoastrelid FROM pg_class WHERE oid = 'article'::regclass)
       OR c.oid IN (SELECT indexrelid FROM pg_index
                    WHERE indrelid IN ('article'::regclass, (SELECT reltoastrelid FROM pg_class
                                                           WHERE oid = 'article'::regclass)))
"""


def read_through(paths: Sequence[Path]) -> None:
    """Read files once, so both sides start from the OS page cache."""
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.read(1 << 20):
                pass


def _pg_relations(connection: psycopg.Connection[Any]) -> tuple[list[str], list[Path]]:
    """The relations' names, and their segment files when this host's data directory is
    readable ([] otherwise: a database elsewhere, or owned by another user)."""
    root = Path(str(connection.execute("SHOW data_directory").fetchone()[0]))  # type: ignore[index]
    rows = connection.execute(RELATIONS).fetchall()
    files: list[Path] = []
    for _, relative in rows:
        first = root / relative
        files += [first, *sorted(first.parent.glob(f"{first.name}.[0-9]*"))]
    return [name for name, _ in rows], [p for p in files if os.access(p, os.R_OK)]


def _resident(paths: Sequence[Path]) -> tuple[float, float] | None:
    """MB of `paths` the page cache holds, and their size (None without util-linux's fincore)."""
    fincore = shutil.which("fincore")
    if not paths or fincore is None:
        return None
    found = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--output", "RES,SIZE", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    resident, size = (sum(map(int, found[i::2])) / 1e6 for i in (0, 1))
    return resident, size


def warm_database(url: str, *, cold: bool = False) -> None:
    """Print how much of the article table's files the page cache holds and, unless `cold`,
    read them once: an SQLite file directly, PostgreSQL's relations with pg_prewarm's `read`
    mode (through the OS, so it needs no access to the data directory)."""
    started = time.perf_counter()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        _report(_resident([path]))
        if not cold:
            read_through([path])
            _done(f"{path.stat().st_size / 1e9:.1f} GB file", started)
        return
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        names, files = _pg_relations(connection)
        _report(_resident(files))
        if cold:
            return
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        blocks = 0
        for name in names:
            row = connection.execute("SELECT pg_prewarm(%s, 'read')", (name,)).fetchone()
            blocks += row[0] if row else 0
    _done(f"{blocks * 8192 / 1e9:.1f} GB in {len(names)} relations", started)


def _report(held: tuple[float, float] | None) -> None:
    if held is not None:
        print(f"# the article table's files in the page cache: {held[0]:.0f} of {held[1]:.0f} MB")


def _done(what: str, started: float) -> None:
    print(f"# read {what} once before the queries in {time.perf_counter() - started:.1f}s")
