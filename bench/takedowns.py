"""Takedowns benchmark: what suppression costs a re-ingest, and how fast `corpus delete` goes.

    python -m bench.takedowns --rows 50000 --deletes 1000

On each backend, in a fresh database: load the synthetic corpus (bench/ingest.py's file),
re-ingest it unchanged (the reference: every batch reads its stored hashes), take down
`--deletes` articles spread over the id range in one `delete_articles` call, and re-ingest
it again (every batch also looks its ids up among the takedowns, and skips the taken-down
ones). Prints each step's seconds and the second re-ingest's ratio to the first: shared
hardware is noisy, so only the ratio compares.
"""

import argparse
import platform
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app import takedowns
from app.db import make_engine, migrate
from app.ingest.pipeline import Summary, ingest
from app.ingest.records import Reject
from app.settings import Settings
from bench.ingest import OUT, corpus_file
from tests.databases import PG_ADMIN_URL, pg_admin


def _ingest(path: Path, engine: Engine) -> tuple[float, Summary]:
    rejects: list[Reject] = []
    started = time.perf_counter()
    summary = ingest([path], engine, on_reject=rejects.append, child_reader=False)
    assert not rejects, rejects[:3]
    return time.perf_counter() - started, summary


def run(path: Path, rows: int, deletes: int, url: str, backend: str) -> None:
    migrate(url)
    engine = make_engine(Settings(database_url=url, statement_timeout_ms=0), pooled=False)
    try:
        load_s, _ = _ingest(path, engine)
        reference_s, first = _ingest(path, engine)
        assert first.unchanged == rows
        step = max(1, rows // deletes)
        ids = list(range(1, rows + 1, step))[:deletes]
        started = time.perf_counter()
        outcome = takedowns.delete_articles(engine, ids, reason="bench")
        delete_s = time.perf_counter() - started
        assert outcome.done == ids
        suppressing_s, second = _ingest(path, engine)
        assert second.suppressed == len(ids)
    finally:
        engine.dispose()
    print(
        f"{backend:<10} {rows:>7} rows: load {load_s:6.2f}s, re-ingest {reference_s:6.2f}s, "
        f"delete {len(ids)} in {delete_s:5.2f}s ({len(ids) / delete_s:7.0f}/s), "
        f"re-ingest with {second.suppressed} suppressed {suppressing_s:6.2f}s "
        f"= {suppressing_s / reference_s:4.2f}x the first re-ingest"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--deletes", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    options = parser.parse_args()
    path = corpus_file(options.rows)
    print(f"# python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {path.name}")
    backends = options.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-takedowns-", dir=OUT) as tmp:
        if "sqlite" in backends:
            url = f"sqlite:///{Path(tmp) / 'corpus.db'}"
            run(path, options.rows, options.deletes, url, "sqlite")
        if "postgresql" in backends:
            name = f"bench_takedowns_{uuid.uuid4().hex[:8]}"
            pg_admin(f'CREATE DATABASE "{name}"')
            try:
                url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)
                run(path, options.rows, options.deletes, url, "postgresql")
            finally:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
