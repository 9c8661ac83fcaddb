"""Keeping a vector folder in step with its database, as app/search/sync.py keeps the
search index: every change after the folder's revision, in revision order (each article
embedded and its row replaced, each takedown's row cleared), then one commit that records
the new revision. Replacing or clearing a row is idempotent, so a crash before a commit
only costs that work again.

One process per folder writes: the holder of the folder's own `FollowerLock`. Every worker
of `corpus serve` runs a `VectorFollower` beside its search index follower; the one holding
the lock embeds and commits, the others reload what it commits. `corpus ingest` feeds the
vectors of what it writes as its batches commit (`VectorLoadIndexer`) when no server
follows the folder. A folder built by another embedder, or from another database, is
rebuilt. Knows nothing of HTTP.
"""

import logging
import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine

from app.cpus import cores
from app.dates import to_micros
from app.meta import database_id
from app.search.embedder import (
    Embedder,
    article_text,
    deferred_embedder,
    is_off,
    load_embedder,
)
from app.search.index import index_path
from app.search.sync import (
    Article,
    FollowerLock,
    Latest,
    OnProgress,
    Polling,
    newest_revision,
    replay_changes,
)
from app.search.vectors import (
    UNDATED,
    Quantized,
    VectorIndex,
    VectorWriter,
    embed_quantized,
    vectors_path,
)
from app.settings import Settings

log = logging.getLogger(__name__)

# A long catch-up commits along the way, so a kill loses at most this much embedding.
COMMIT_EVERY_ROWS = 20_000
PENDING_BATCHES = 2  # per embedding process
EMBED_PROCESS_AFTER_ROWS = 20_000


def folder(settings: Settings) -> Path:
    """The vector folder of these settings (beside the search index folder)."""
    return vectors_path(index_path(settings))


def _add(writer: VectorWriter, embedder: Embedder, articles: Sequence[Article]) -> None:
    if not articles:
        return
    vectors = embedder.embed([article_text(a[2], a[3]) for a in articles])
    writer.add(
        [a[0] for a in articles],
        [a[1] for a in articles],
        [UNDATED if a[4] is None else to_micros(a[4]) for a in articles],
        vectors,
    )


def _apply(writer: VectorWriter, embedder: Embedder, latest: Latest) -> None:
    """One batch of changes, each article's newest state (None: taken down)."""
    writer.delete([i for i, article in latest.items() if article is None])
    _add(writer, embedder, [article for article in latest.values() if article is not None])


def apply_changes(
    writer: VectorWriter,
    embedder: Embedder,
    engine: Engine,
    *,
    on_progress: OnProgress | None = None,
    stopping: Callable[[], bool] | None = None,
) -> int:
    """Apply every change after the folder's revision, in revision order; the new revision.
    Stops early, after committing what it applied, once `stopping()` says so."""
    return replay_changes(
        engine,
        writer.revision,
        lambda latest: _apply(writer, embedder, latest),
        writer.commit,
        commit_every=COMMIT_EVERY_ROWS,
        on_progress=on_progress,
        stopping=stopping,
    )


def open_writer(settings: Settings, engine: Engine, embedder: Embedder) -> VectorWriter:
    """Under the lock: the folder, rebuilt when another database or embedder made it."""
    return VectorWriter.open_for(folder(settings), database_id(engine), embedder.name, embedder.dim)


def catch_up(settings: Settings, engine: Engine, embedder: Embedder) -> bool:
    """Bring the vector folder up to date now if no one else holds it (False: someone does),
    looking again after letting go, as sync.catch_up does."""
    lock = FollowerLock(folder(settings))
    if not lock.acquire():
        return False
    while True:
        try:
            apply_changes(open_writer(settings, engine, embedder), embedder, engine)
        finally:
            lock.release()
        if not behind(settings, engine, embedder) or not lock.acquire():
            return True


def behind(settings: Settings, engine: Engine, embedder: Embedder) -> bool:
    index = VectorIndex.open(folder(settings))
    if index is None or index.meta.embedder != embedder.name:
        return True
    return index.meta.revision < newest_revision(engine)


class VectorFollower(Polling):
    """One process's view of its vector folder: ready once it has reached the revision the
    database had at start, and built by the embedder this process uses."""

    name = "vector-follower"
    label = "vector index follower"

    def __init__(self, settings: Settings, engine: Engine, embedder: Embedder) -> None:
        super().__init__(folder(settings), engine, settings.index_poll_s)
        self.embedder = embedder
        self.index: VectorIndex | None = None
        self._writer: VectorWriter | None = None

    def step(self) -> None:
        """One look: embed and apply the new changes (as the writer), or reload (a reader)."""
        database_revision, db_id = self._look()
        if self._writer is None and self.lock.acquire():
            self._writer = VectorWriter.open_for(
                self.path, db_id, self.embedder.name, self.embedder.dim
            )
        if self._writer is not None:
            apply_changes(
                self._writer,
                self.embedder,
                self.engine,
                on_progress=self._progress,
                stopping=self._stop.is_set,
            )
        if self.index is None:
            self.index = VectorIndex.open(self.path)
        else:
            self.index.reload()
        self._database_revision = database_revision
        meta = self.index.meta if self.index is not None else None
        ours = (db_id, self.embedder.name, self.embedder.dim)
        if meta is not None and (meta.database_id, meta.embedder, meta.dim) == ours:
            self._reached(meta.revision)
        elif meta is not None:
            self.index = None  # another database's or embedder's: wait for the rebuild


@contextmanager
def _main_left_behind() -> Iterator[None]:
    """Processes spawned meanwhile do not run the parent's `__main__` again. multiprocessing
    runs it in each child so that functions defined there unpickle; ours live in modules,
    and for `corpus` it is the whole CLI: 0.7 s of imports and ~40 MB in a process that
    only embeds. The child is started in the calling thread, so the swap lasts that long."""
    names = vars(main := sys.modules["__main__"])
    saved: dict[str, object] = {n: names[n] for n in ("__spec__", "__file__") if n in names}
    main.__spec__ = None  # multiprocessing would import it by this name
    names.pop("__file__", None)  # or run it from this path
    try:
        yield
    finally:
        names.update(saved)


class VectorLoadIndexer:
    """Embeds a load's written records as its batches commit, when no one else follows the
    folder; at the end, as sync.LoadIndexer does, the folder claims the database's newest
    revision only if the load's own batches took every revision since it started.

    A large load on two or more cores embeds in a child process (spawned once the load
    passes `process_after_rows`, or at its first batch when its size says it will), so
    that embedding, the slowest stage, runs beside the reading and writing instead of
    after each batch: one process per two cores (at most three), each with at most
    PENDING_BATCHES waiting. The process sends back rows quantized as the folder stores
    them; they are written in batch order.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        embedder: Embedder | None = None,
        *,
        process_after_rows: int = EMBED_PROCESS_AFTER_ROWS,
    ) -> None:
        self.settings = settings
        self.engine = engine
        # From settings.embedder only if this load writes the folder (a load that a server
        # follows never needs it), and loaded only when this process embeds: a large load's
        # child process does that, and the loader needs only the model's name and dimension.
        self._embedder = embedder
        self.lock = FollowerLock(folder(settings))
        self._writer: VectorWriter | None = None
        self._start = 0
        self._revisions = 0
        self._rows = 0
        self._process_after_rows = process_after_rows
        self._process: ProcessPoolExecutor | None = None
        self._workers = 1
        self._pending: deque[tuple[Future[Quantized], list[Article]]] = deque()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            found = deferred_embedder(self.settings.embedder)
            assert found is not None, "load_indexer makes none when search by meaning is off"
            self._embedder = found
        return self._embedder

    def __enter__(self) -> "VectorLoadIndexer":
        if self.lock.acquire():
            self._writer = open_writer(self.settings, self.engine, self.embedder)
            self._start = apply_changes(self._writer, self.embedder, self.engine)
        return self

    def add(self, written: Iterable[Article], revisions: int) -> None:
        """Embed what one committed batch wrote, and count the revisions it took."""
        if self._writer is None:
            return
        batch = list(written)
        self._revisions += revisions
        self._rows += len(batch)
        if self._process is None and self._rows > self._process_after_rows and cores() >= 2:
            context = multiprocessing.get_context("spawn")  # nothing inherited: no connections
            self._workers = max(1, min(3, cores() // 2))
            self._process = ProcessPoolExecutor(self._workers, mp_context=context)
        if self._process is None:
            _add(self._writer, self.embedder, batch)
            return
        texts = [article_text(a[2], a[3]) for a in batch]
        scale = self._writer.meta.scale
        with _main_left_behind():  # a submit may start a process
            future = self._process.submit(embed_quantized, self.settings.embedder, texts, scale)
        self._pending.append((future, batch))
        while len(self._pending) > PENDING_BATCHES * self._workers:
            self._take()

    def _take(self) -> None:
        """Write the oldest pending batch's vectors."""
        future, batch = self._pending.popleft()
        vectors = future.result()
        assert self._writer is not None
        self._writer.add(
            [a[0] for a in batch],
            [a[1] for a in batch],
            [UNDATED if a[4] is None else to_micros(a[4]) for a in batch],
            vectors,
        )

    def finish(self) -> bool:
        """Commit and bring the folder up to date; False when a server follows it instead."""
        if self._writer is None:
            return catch_up_configured(self.settings, self.engine)
        while self._pending:
            self._take()
        newest = newest_revision(self.engine)
        alone = newest == self._start + self._revisions
        self._writer.commit(newest if alone else self._start)
        apply_changes(self._writer, self.embedder, self.engine)
        return True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.shutdown(cancel_futures=True)
        self._pending.clear()
        if self._writer is None:
            return
        self._writer = None
        self.lock.release()
        if exc_type is None and behind(self.settings, self.engine, self.embedder):
            catch_up(self.settings, self.engine, self.embedder)


def load_indexer(
    settings: Settings, engine: Engine, *, expected_rows: int = 0
) -> VectorLoadIndexer | None:
    """A load's vector indexer, or None when search by meaning is off. A load expected to
    pass EMBED_PROCESS_AFTER_ROWS embeds in its child process from the first batch: the
    loading process then never runs the model on the critical path of its first rows."""
    if is_off(settings.embedder):
        return None
    after = 0 if expected_rows > EMBED_PROCESS_AFTER_ROWS else EMBED_PROCESS_AFTER_ROWS
    return VectorLoadIndexer(settings, engine, process_after_rows=after)


def catch_up_configured(settings: Settings, engine: Engine) -> bool:
    """`catch_up` with the configured embedder, loaded only if no one else holds the folder
    (False: someone does); True at once when search by meaning is off."""
    if is_off(settings.embedder):
        return True
    lock = FollowerLock(folder(settings))
    if not lock.acquire():
        return False
    lock.release()
    embedder = load_embedder(settings.embedder)
    return True if embedder is None else catch_up(settings, engine, embedder)


def status(settings: Settings, database_revision: int) -> dict[str, object]:
    """What `corpus index status` says of the vector folder."""
    path = folder(settings)
    index = VectorIndex.open(path)
    if index is None:
        return {"path": str(path), "state": "missing"}
    meta = index.meta
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return {
        "path": str(path),
        "state": "ready",
        "embedder": meta.embedder,
        "revision": meta.revision,
        "lag": max(0, database_revision - meta.revision),
        "articles": index.view().live_count(),
        "size_bytes": size,
    }
