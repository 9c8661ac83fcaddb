"""Loads that meet another writer: each phase waits the other out, on both backends.

A phase that finds the write lock held (by this test, or by another `corpus ingest`) must
wait and carry on, however long the lock is held: the loads here run with a busy timeout
far shorter than the holds, so only the ingest's own waiting gets them through.
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from app import models, synth
from app.db import make_engine, migrate
from app.ingest.fields import FieldMap
from app.ingest.pipeline import Summary, ingest
from app.ingest.records import Reject
from app.settings import Settings
from app.writes.busy import while_busy
from app.writes.lock import take_write_lock
from tests.test_ingest_scale import SMALL_BODIES, check_indexes, check_search_index, count

SHORT_BUSY_TIMEOUT_MS = 50
HOLD_S = 1.0  # twenty busy timeouts


class LockHolder:
    """Takes the database's write lock in a thread of its own and holds it for `hold_s`."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(Settings(database_url=database_url), pooled=False)
        self.taken = threading.Event()
        self.thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def hold(self, hold_s: float = HOLD_S) -> None:
        """Returns once the lock is held; a thread lets it go `hold_s` later."""
        self.taken.clear()
        self.thread = threading.Thread(target=self._hold, args=(hold_s,))
        self.thread.start()
        assert self.taken.wait(30), self.failure

    def _hold(self, hold_s: float) -> None:
        try:
            connection = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            with connection, connection.begin():
                take_write_lock(connection)  # PostgreSQL's; SQLite's is BEGIN IMMEDIATE
                self.taken.set()
                time.sleep(hold_s)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.failure = exc
            self.taken.set()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
        self.engine.dispose()
        assert self.failure is None, self.failure


@contextmanager
def lock_holder(database_url: str) -> Iterator[LockHolder]:
    holder = LockHolder(database_url)
    try:
        yield holder
    finally:
        holder.join()


def impatient_engine(database_url: str) -> Engine:
    settings = Settings(database_url=database_url, sqlite_busy_timeout_ms=SHORT_BUSY_TIMEOUT_MS)
    return make_engine(settings, pooled=False)


def load(
    engine: Engine,
    path: Path,
    *,
    on_progress: Callable[[Summary], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    field_map: FieldMap | None = None,
) -> Summary:
    rejects: list[Reject] = []
    summary = ingest(
        [path],
        engine,
        batch_size=500,
        on_reject=rejects.append,
        field_map=field_map,
        on_progress=on_progress or (lambda _: None),
        on_phase=on_phase or (lambda _: None),
        child_reader=False,
    )
    assert rejects == []
    return summary


def source_names(engine: Engine) -> dict[int, str | None]:
    source = models.source_table
    with engine.connect() as c:
        return {row.source_id: row.name for row in c.execute(select(source))}


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    """A first load into an empty database: it builds the search indexes after the data."""
    folder = tmp_path / "in"
    folder.mkdir()
    synth.write(folder / "a.jsonl", 2_000, seed=5, body_chars=SMALL_BODIES)
    (folder / "sources.json").write_text('{"1": "Wire One", "2": "Wire Two"}')
    return folder


def test_a_load_waits_for_a_lock_held_before_it_starts(database_url: str, articles: Path) -> None:
    engine = impatient_engine(database_url)
    with lock_holder(database_url) as holder:
        holder.hold()  # suspending the indexes, then the sources, meet it
        summary = load(engine, articles)
    assert summary.inserted == count(engine) == 2_000
    names = source_names(engine)
    assert (names[1], names[2]) == ("Wire One", "Wire Two")
    check_indexes(engine)
    engine.dispose()


def test_a_batch_waits_for_a_lock_taken_between_batches(database_url: str, articles: Path) -> None:
    engine = impatient_engine(database_url)
    with lock_holder(database_url) as holder:

        def after_batch(summary: Summary) -> None:
            if summary.inserted == 500:  # the next batch meets it
                holder.hold()

        summary = load(engine, articles, on_progress=after_batch)
    assert summary.inserted == count(engine) == 2_000
    check_indexes(engine)
    engine.dispose()


def test_the_index_rebuild_waits_for_a_lock_taken_before_it(
    database_url: str, articles: Path
) -> None:
    engine = impatient_engine(database_url)
    phases: list[str] = []
    with lock_holder(database_url) as holder:

        def before_phase(text: str) -> None:
            phases.append(text)
            holder.hold()  # the rebuild, then the checkpoint, meet it

        load(engine, articles, on_phase=before_phase)
    assert phases == ["building the deferred indexes"]
    check_indexes(engine)
    engine.dispose()


def test_naming_a_source_waits_for_a_held_lock(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "named.jsonl"
    synth.write(path, 10, seed=6, body_chars=SMALL_BODIES)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for line in lines:
        line["publication"] = "The Daily Test"
        del line["source_id"]
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    engine = impatient_engine(database_url)
    with lock_holder(database_url) as holder:
        holder.hold()
        summary = load(engine, path, field_map=FieldMap.parse(["publication=source_id"]))
    assert summary.inserted == 10
    assert list(source_names(engine).values()) == ["The Daily Test"]
    engine.dispose()


CLI = [sys.executable, "-c", "from app.cli import main; main()"]


def start(args: list[str], database_url: str) -> subprocess.Popen[bytes]:
    env_busy = {"CORPUS_SQLITE_BUSY_TIMEOUT_MS": str(SHORT_BUSY_TIMEOUT_MS)}
    return subprocess.Popen(
        [*CLI, "ingest", "--quiet", "--database-url", database_url, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env_busy},
    )


def finish(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait for every load to exit 0; kill those still running after a failure."""
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_three_overlapping_loads_all_finish_with_each_record_once(
    database_url: str, tmp_path: Path
) -> None:
    """A large first load, which builds its indexes at the end (one long transaction), and
    two more started while it loads: 1-24,000, then 12,001-26,000 and 20,001-30,000."""
    first, second, third = (tmp_path / f"{n}.jsonl" for n in ("first", "second", "third"))
    synth.write(first, 24_000, seed=7, first_id=1, body_chars=SMALL_BODIES)
    synth.write(second, 14_000, seed=8, first_id=12_001, body_chars=SMALL_BODIES)
    synth.write(third, 10_000, seed=9, first_id=20_001, body_chars=SMALL_BODIES)
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    procs = [start(["--batch-size", "1000", str(first)], database_url)]
    try:
        deadline = time.monotonic() + 120
        while count(engine) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        procs.append(start(["--batch-size", "500", str(second)], database_url))
        procs.append(start(["--batch-size", "700", str(third)], database_url))
    finally:
        finish(procs)
    article = models.article_table
    with engine.connect() as c:
        ids = c.execute(select(article.c.article_id).order_by(article.c.article_id)).scalars()
        assert list(ids) == list(range(1, 30_001))
        revisions = c.execute(select(func.count(func.distinct(article.c.revision)))).scalar()
        assert revisions == count(engine)
    check_search_index(engine)
    engine.dispose()


def test_a_lock_held_past_the_bound_ends_the_wait_with_the_database_error(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    migrate(url)
    engine = impatient_engine(url)
    tries = 0

    def attempt() -> None:
        nonlocal tries
        tries += 1
        with engine.connect() as c, c.begin():
            c.execute(models.source_table.insert().values(source_id=1, name="x"))

    with lock_holder(url) as holder:
        holder.hold(hold_s=2.0)
        with pytest.raises(OperationalError, match="database is locked"):
            while_busy(attempt, limit_s=0.3)
    assert tries > 1  # it did try again before giving up
    with pytest.raises(OperationalError, match="no such table"):  # not busy: raised at once
        while_busy(lambda: engine.connect().exec_driver_sql("SELECT * FROM no_table").all())
    while_busy(attempt)  # the lock is free again
    assert source_names(engine) == {1: "x"}
    engine.dispose()
