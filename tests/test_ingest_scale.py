"""Ingest under faults and load, through the real command in a subprocess, on both backends.

kill -9 mid-load and a re-run; two overlapping ingests at once; peak RSS on a 200k-record
file; and the search indexes that a large load builds after the data.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from app import models, synth
from app.cpus import cores
from app.db import backend, make_engine
from app.ingest import indexes, prefetch
from app.ingest.writer import WAL_CHECKPOINT_BYTES, tune_sqlite_for_load
from app.search import vector_sync
from app.search.index import SearchIndex, index_path
from app.search.sync import FollowerLock, newest_revision
from app.settings import Settings
from tests.databases import clone, drop

CLI = [sys.executable, "-c", "from app.cli import main; main()"]
SMALL_BODIES = (200, 800)  # keeps PostgreSQL's per-row tsvector cheap enough for a test
# Compared row by row; timestamps and revision numbers differ between runs by design.
COMPARED = ("article_id", "source_id", "title", "content", "extra", "content_hash", "word_count")
RSS_LIMIT_MB = 150


def start(ingest_args: list[str], database_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "ingest", "--quiet", "--database-url", database_url, *ingest_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def corpus(ingest_args: list[str], database_url: str) -> None:
    """Run `corpus ingest` to the end; it must succeed."""
    proc = start(ingest_args, database_url)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()


def children(pid: int) -> list[int]:
    """Linux: the processes `pid` has forked and not yet reaped."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Whether `pid` has exited (or is a zombie nobody reaps) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def rows(engine: Engine) -> list[tuple[Any, ...]]:
    article = models.article_table
    with engine.connect() as c:
        stmt = select(*(article.c[n] for n in COMPARED)).order_by(article.c.article_id)
        return [tuple(r) for r in c.execute(stmt)]


def count(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(models.article_table)).scalar_one())


def check_indexes(engine: Engine) -> None:
    """Every index a large load builds after the data is back, and the file is sound."""
    with engine.connect() as c:
        assert indexes.missing_indexes(c) == []
        if engine.dialect.name == "sqlite":
            assert c.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"


def check_search_index(engine: Engine) -> None:
    """check_indexes, and the search index holding exactly the table's rows at the table's
    newest revision (the CLI brings it up to date before it exits)."""
    check_indexes(engine)
    url = engine.url.render_as_string(hide_password=False)
    index = SearchIndex.open(index_path(Settings(database_url=url)))
    assert index is not None
    assert index.revision() == newest_revision(engine)
    assert index.searcher().num_docs == count(engine) + 1  # and the meta document


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "articles.jsonl"
    synth.write(path, 15_000, seed=1, body_chars=SMALL_BODIES)
    return path


@pytest.fixture
def other_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second empty database on the same backend, for the uninterrupted reference run."""
    url = clone(template_url, tmp_path_factory.mktemp("ref"))
    yield url
    drop(url)


def test_kill_9_then_rerun_equals_an_uninterrupted_run(
    database_url: str, other_url: str, big_file: Path
) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    batch = "500"
    proc = start(["--batch-size", batch, str(big_file)], database_url)
    try:
        deadline = time.monotonic() + 60
        while count(engine) < 3 * int(batch) and time.monotonic() < deadline:
            time.sleep(0.01)
        readers = children(proc.pid)  # the file is large enough for child-process readers
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the load finished before it could be killed"
    assert len(readers) == min(prefetch.MAX_READERS, cores())
    assert all(gone(pid) for pid in readers), "a reader process outlived its parent"
    partial = count(engine)
    assert 0 < partial < 15_000
    assert partial % int(batch) == 0  # whole batches only

    corpus([str(big_file)], database_url)
    corpus([str(big_file)], other_url)

    ref_engine = make_engine(Settings(database_url=other_url), pooled=False)
    assert rows(engine) == rows(ref_engine)
    check_search_index(engine)
    with engine.connect() as c:
        revisions = c.execute(select(models.article_table.c.revision)).scalars().all()
    assert len(set(revisions)) == 15_000
    engine.dispose()
    ref_engine.dispose()


def test_two_overlapping_ingests_at_once_load_each_record_once(
    database_url: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    synth.write(first, 4_000, seed=2, first_id=1, body_chars=SMALL_BODIES)
    synth.write(second, 4_000, seed=2, first_id=1, body_chars=SMALL_BODIES)
    # second overlaps first completely, plus 2,000 more ids of its own
    synth.write(tmp_path / "more.jsonl", 2_000, seed=3, first_id=4_001, body_chars=SMALL_BODIES)
    procs = [
        start(["--batch-size", "300", str(first)], database_url),
        start(["--batch-size", "300", str(second), str(tmp_path / "more.jsonl")], database_url),
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    stored = rows(engine)
    assert [r[0] for r in stored] == list(range(1, 6_001))
    with engine.connect() as c:
        revisions = c.execute(select(models.article_table.c.revision)).scalars().all()
    assert len(set(revisions)) == len(revisions)
    check_search_index(engine)
    engine.dispose()


def test_an_interrupted_deferred_index_is_repaired_by_the_next_run(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    path = tmp_path / "a.jsonl"
    synth.write(path, 500, body_chars=SMALL_BODIES)
    corpus([str(path)], database_url)
    indexes.suspend(engine)  # as a load killed after dropping them leaves it
    with engine.connect() as c:
        assert indexes.missing_indexes(c) == list(indexes.DEFERRED_NAMES)
    more = tmp_path / "b.jsonl"
    synth.write(more, 10, first_id=501, body_chars=SMALL_BODIES)
    corpus([str(more)], database_url)  # small, but it finds the indexes missing
    check_search_index(engine)
    engine.dispose()


def test_a_large_load_leaves_the_table_settled_for_readers(
    database_url: str, tmp_path: Path
) -> None:
    """After a load that built its indexes at the end: PostgreSQL's planner knows the rows
    (VACUUM ANALYZE ran, so `count=estimated` has an estimate at once), and SQLite's WAL
    has been copied back and truncated."""
    path = tmp_path / "a.jsonl"
    synth.write(path, 500, body_chars=SMALL_BODIES)
    corpus([str(path)], database_url)
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        with engine.connect() as c:
            if backend(database_url) == "postgresql":
                stats = c.execute(
                    text(
                        "SELECT c.reltuples, s.last_vacuum IS NOT NULL FROM pg_class c"
                        " JOIN pg_stat_user_tables s ON s.relid = c.oid"
                        " WHERE c.oid = 'article'::regclass"
                    )
                ).one()
                assert tuple(stats) == (500, True)
            else:
                database = engine.url.database
                assert database is not None
                wal = Path(database + "-wal")
                assert not wal.exists() or wal.stat().st_size == 0
    finally:
        engine.dispose()


def test_deferred_index_ddl_matches_the_migration(database_url: str) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    with engine.connect() as c:
        expected = indexes.deferred_indexes(c)
        names = list(indexes.DEFERRED_NAMES)
        if c.dialect.name == "sqlite":
            listed = (
                "SELECT name, sql FROM sqlite_master"
                " WHERE name IN (SELECT value FROM json_each(:n))"
            )
            found = c.execute(text(listed), {"n": json.dumps(names)})
        else:
            listed = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:n)"
            found = c.execute(text(listed), {"n": names})
        stored = {name: _normal(sql) for name, sql in found}
    engine.dispose()
    assert stored == {name: _normal(sql) for name, sql in expected.items()}


def _normal(ddl: str) -> str:
    """DDL without layout or schema qualification, as PostgreSQL prints an index back."""
    ddl = ddl.replace("public.", "").replace(" ONLY ", " ").replace(" USING btree", "")
    return " ".join(ddl.replace("(title, article_id)", "(title,article_id)").split()).upper()


@pytest.fixture(scope="module")
def file_200k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rss") / "200k.jsonl"
    synth.write(path, 200_000, seed=4, body_chars=(100, 400))
    return path


def test_peak_rss_stays_flat_on_a_200k_record_file(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend(database_url) != "sqlite":
        pytest.skip("one backend is enough for the reader's memory; PostgreSQL takes minutes")
    file_200k: Path = request.getfixturevalue("file_200k")
    report = tmp_path / "maxrss"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forked pytest.
    # The child-process reader's peak too: ru_maxrss of the children this process reaped.
    code = (
        "import atexit, pathlib, resource\n"
        "from app.cli import main\n"
        "status = pathlib.Path('/proc/self/status')\n"
        "def done():\n"
        "    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        f"    pathlib.Path({str(report)!r}).write_text(status.read_text() + f'Child: {{child}}')\n"
        "atexit.register(done)\n"
        "main()\n"
    )
    args = ["ingest", "--quiet", "--database-url", database_url, str(file_200k)]
    # The loader's own memory: a server holding the index locks builds the search index and
    # the vector index (their memory is measured by bench/search.py and bench/semantic.py).
    settings = Settings(database_url=database_url)
    locks = [FollowerLock(index_path(settings)), FollowerLock(vector_sync.folder(settings))]
    assert all(lock.acquire() for lock in locks)
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=False)
    finally:
        for lock in locks:
            lock.release()
    assert proc.returncode == 0, proc.stderr.decode()
    hwm = next(line for line in report.read_text().splitlines() if line.startswith("VmHWM:"))
    peak_mb = int(hwm.split()[1]) / 1024  # kB
    assert peak_mb < RSS_LIMIT_MB
    child = next(line for line in report.read_text().splitlines() if line.startswith("Child:"))
    child_mb = int(child.split()[1]) / 1024  # kB
    assert 0 < child_mb < RSS_LIMIT_MB  # 0 would mean no child reader ran


def test_a_lost_connection_is_exit_2_with_one_line_and_keeps_what_was_committed(
    database_url: str, big_file: Path
) -> None:
    if backend(database_url) != "postgresql":
        pytest.skip("a server to lose: PostgreSQL only")
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    proc = start(["--batch-size", "500", str(big_file)], database_url)
    deadline = time.monotonic() + 60
    while count(engine) < 1_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    with engine.connect() as c:
        c.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        c.commit()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    message = err.decode().strip()
    assert message.startswith("error: database error:")
    assert "\n" not in message
    assert "Traceback" not in message
    assert count(engine) >= 1_000
    engine.dispose()


@pytest.mark.parametrize("page_size", [4096, 16384])
def test_a_load_checkpoints_its_wal_at_the_same_size_whatever_the_page_size(
    tmp_path: Path, page_size: int
) -> None:
    path = tmp_path / "pages.db"
    with closing(sqlite3.connect(path)) as made:  # page size is fixed when the file is made
        made.execute(f"PRAGMA page_size = {page_size}")
        made.execute("CREATE TABLE t (a)")
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"), pooled=False)
    try:
        with engine.connect() as connection:
            tune_sqlite_for_load(connection)
            pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
            assert connection.exec_driver_sql("PRAGMA page_size").scalar_one() == page_size
    finally:
        engine.dispose()
    assert pages * page_size == WAL_CHECKPOINT_BYTES
