"""Keeping an index in step with its database, and the follower that does it for a server.

`apply_changes` brings an index to its database's newest revision: every article with a
higher revision than the index records, in revision order (the order of /v1/changes),
replaced in the index, and every takedown deleted from it, then one commit that also
records the new revision. Replacing or deleting a document is idempotent, so a crash
before a commit only costs that work again.

One process per folder writes: the holder of `FollowerLock`, a file lock beside the folder
(beside, not inside: a rebuild deletes the folder). Every worker of `corpus serve` runs a
`Follower`; the one holding the lock applies changes, the others reload what it commits.
`corpus ingest` applies its own changes when the lock is free, i.e. no server follows.

A rebuild (`corpus index rebuild`) never waits for the lock: it builds a new index in
`<folder>.next` (`build_next`), which nobody reads, while the servers answer from the old
one, and marks it ready. Whoever holds the lock then adopts it (`adopt_next`): brings it
up to the database's newest revision, so it holds at least what the old one did, and
renames it into the folder's place. Every follower's next reload reads the new index.
"""

import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import tantivy
from sqlalchemy import Engine, Select
from sqlalchemy.exc import SQLAlchemyError

from app import revisions
from app.cpus import cores
from app.dates import bucket_number, to_micros
from app.meta import database_id
from app.search.index import (
    BUCKET_FIELDS,
    META_ID,
    PUBLISHED_AT,
    SCHEMA,
    WORD_FIELDS,
    IndexMeta,
    SearchIndex,
    index_path,
)
from app.settings import Settings

log = logging.getLogger(__name__)

CHANGE_BATCH_ROWS = 1000
# A long catch-up (a rebuild) commits along the way, so a kill loses at most this much.
COMMIT_EVERY_ROWS = 100_000
FOLLOWER_HEAP_BYTES = 64_000_000
BULK_HEAP_BYTES = 32_000_000

OnProgress = Callable[[int, int], None]  # (index revision so far, target revision)
# What the index holds of an article, in ARTICLE_COLUMNS order.
ARTICLE_COLUMNS = ("article_id", "source_id", "title", "content", "published_at", "url", "author")
Article = tuple[int, int, str, str, datetime | None, str | None, str | None]


def newest_revision(engine: Engine) -> int:
    with engine.connect() as connection:
        return revisions.newest_revision(connection)


def _document(article: Article) -> tantivy.Document:
    article_id, source_id, title, content, published_at, url, author = article
    doc = tantivy.Document()
    doc.add_unsigned("article_id", article_id)
    doc.add_unsigned("source_id", source_id)
    doc.add_text("title", title)
    doc.add_text("content", content)
    doc.add_text(WORD_FIELDS["title"], title)
    doc.add_text(WORD_FIELDS["content"], content)
    if published_at is not None:
        doc.add_integer(PUBLISHED_AT, to_micros(published_at))
        for unit, field in BUCKET_FIELDS.items():
            doc.add_integer(field, bucket_number(published_at, unit))
    if url is not None:
        doc.add_text("url", url)
    if author is not None:
        doc.add_text("author", author)
    return doc


def _delete(writer: tantivy.IndexWriter, article_ids: Collection[int]) -> None:
    """Delete the documents of these articles: one operation for them all. (By query: a
    term built from a Python int would be a signed one, matching nothing. One term query
    per article kept a scoring weight of ~700 bytes each in the writer's delete queue until
    the commit: 70 MB of a 100k load, growing with the load.)"""
    if article_ids:
        ids = list(article_ids)
        writer.delete_documents_by_query(tantivy.Query.term_set_query(SCHEMA, "article_id", ids))


def _replace(writer: tantivy.IndexWriter, latest: dict[int, Article | None]) -> None:
    """Make the index hold each article's latest version (None: taken down, so none): one
    delete for them all, then their documents."""
    _delete(writer, latest.keys())
    for article in latest.values():
        if article is not None:
            writer.add_document(_document(article))


def _commit(writer: tantivy.IndexWriter, meta: IndexMeta) -> None:
    """Commit what `writer` holds together with `meta`: the two land or neither does."""
    _delete(writer, [META_ID])
    writer.add_document(meta.document())
    writer.commit()


def _changes(after: int) -> Select[Any]:
    """The next batch of changes: articles with their text, and takedowns (no source,
    title or content), in revision order (app/revisions.py)."""
    return revisions.changes_after((*ARTICLE_COLUMNS, "revision"), after, CHANGE_BATCH_ROWS)


Latest = dict[int, Article | None]  # each article's newest state in a batch; None: taken down


def replay_changes(
    engine: Engine,
    after: int,
    apply: Callable[[Latest], None],
    commit: Callable[[int], None],
    *,
    commit_every: int,
    on_progress: OnProgress | None = None,
    stopping: Callable[[], bool] | None = None,
) -> int:
    """Every change after revision `after`, in revision order, batch by batch: `apply` gets
    each batch's newest state of every article it touches, and `commit(revision)` runs every
    `commit_every` rows and at the end. Stops early, after committing what it applied, once
    `stopping()` says so. The revision reached. (The search and vector followers both.)"""
    target = newest_revision(engine)
    if after >= target:
        return after
    revision, pending = after, 0
    with engine.connect() as connection:
        while True:
            rows = connection.execute(_changes(revision)).all()
            if not rows:
                break
            apply({row[0]: None if row.deleted else row[:7] for row in rows})
            revision = rows[-1].revision
            pending += len(rows)
            if pending >= commit_every:
                commit(revision)
                pending = 0
                if on_progress is not None:
                    on_progress(revision, target)
            connection.rollback()  # end the read: a long catch-up must not pin old versions
            if stopping is not None and stopping():
                break  # the process is stopping: keep what is applied, the next one goes on
    commit(revision)
    if on_progress is not None:
        on_progress(revision, target)
    return revision


def apply_changes(
    index: SearchIndex,
    writer: tantivy.IndexWriter,
    engine: Engine,
    *,
    on_progress: OnProgress | None = None,
    stopping: Callable[[], bool] | None = None,
) -> int:
    """Apply every change after the index's revision, in revision order; the new revision.
    Stops early, after committing what it applied, once `stopping()` says so."""
    meta = index.meta()
    assert meta is not None, "open_for gives every index its meta document"
    start = meta.revision
    reached = replay_changes(
        engine,
        start,
        lambda latest: _replace(writer, latest),
        lambda revision: _commit(writer, replace(meta, revision=revision)),
        commit_every=COMMIT_EVERY_ROWS,
        on_progress=on_progress,
        stopping=stopping,
    )
    if reached > start:
        index.reload()
    return reached


READY_FILE = "READY"  # in `<folder>.next` once its build has committed its last change


def next_folder(folder: Path) -> Path:
    """Where a rebuild builds the index that replaces `folder`'s."""
    return folder.with_name(folder.name + ".next")


def build_next(settings: Settings, engine: Engine, *, on_progress: OnProgress | None = None) -> int:
    """A new index of the whole database in `<folder>.next`, marked ready for `adopt_next`;
    its revision. Takes that folder's own lock, so that one rebuild runs at a time."""
    folder = next_folder(index_path(settings))
    lock = FollowerLock(folder)
    if not lock.acquire():
        raise OSError(f"another rebuild is writing {folder}")
    try:
        index = SearchIndex.create(folder, database_id(engine), settings.language)
        writer = index.writer(BULK_HEAP_BYTES)
        try:
            revision = apply_changes(index, writer, engine, on_progress=on_progress)
        finally:
            writer.wait_merging_threads()
        (folder / READY_FILE).touch()
        return revision
    finally:
        lock.release()


def adopt_next(folder: Path, engine: Engine) -> bool:
    """Under `folder`'s lock: put a ready rebuild in the folder's place, first brought up
    to the database's newest revision; whether there was one. The old folder is deleted
    (searchers still open on it keep their files until they close)."""
    built = next_folder(folder)
    if not (built / READY_FILE).exists():
        return False
    index = SearchIndex.open(built)
    if index is None:
        shutil.rmtree(built, ignore_errors=True)
        return False
    writer = index.writer(BULK_HEAP_BYTES)
    try:
        apply_changes(index, writer, engine)
    finally:
        writer.wait_merging_threads()
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    (built / READY_FILE).unlink()
    built.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return True


class FollowerLock:
    """An exclusive flock on `<folder>.lock`: whoever holds it writes the folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder.with_name(folder.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, blocking: bool = False) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def catch_up(settings: Settings, engine: Engine, *, on_progress: OnProgress | None = None) -> bool:
    """Bring the index up to date now if no one else holds it (False: someone does).

    Whoever holds the lock looks again after letting go, and takes it back if the database
    moved on meanwhile: a load that finds the lock taken at its end may leave its last
    batches to the holder, which then sees them, whether it is a server or another load.
    """
    lock = FollowerLock(index_path(settings))
    if not lock.acquire():
        return False
    while True:
        try:
            rebuild_or_follow(settings, engine, on_progress=on_progress)
        finally:
            lock.release()
        if not behind(settings, engine) or not lock.acquire():
            return True


def behind(settings: Settings, engine: Engine) -> bool:
    """Whether the index has not applied the database's newest revision."""
    index = SearchIndex.open(index_path(settings))
    return index is None or index.revision() < newest_revision(engine)


def rebuild_or_follow(
    settings: Settings,
    engine: Engine,
    *,
    rebuild: bool = False,
    on_progress: OnProgress | None = None,
) -> int:
    """Under the lock: open (or, if asked or needed, rebuild) the index and apply every change."""
    path = index_path(settings)
    db_id = database_id(engine)
    language = settings.language
    if rebuild:
        index = SearchIndex.create(path, db_id, language)
    else:
        index = SearchIndex.open_for(path, db_id, language)
    writer = index.writer(BULK_HEAP_BYTES)
    try:
        return apply_changes(index, writer, engine, on_progress=on_progress)
    finally:
        writer.wait_merging_threads()


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What /readyz and a search that must wait report about the index."""

    ready: bool
    index_revision: int
    database_revision: int
    following: bool  # this process writes the index


class Reloadable(Protocol):
    """An open index folder (search or vectors) that can show its last commit."""

    def reload(self) -> None: ...


class Polling:
    """A folder derived from the database, kept current by a thread that looks every
    `poll_s` (`step`, each index's own) and keeps going when the database or the disk is
    away. Ready once the folder has reached the revision the database had when it started.
    One loop for the search index's follower and the vector index's."""

    name = "follower"  # its thread's
    label = "follower"  # its log lines'
    index: Reloadable | None  # what this process's searches read, once open

    def __init__(self, path: Path, engine: Engine, poll_s: float) -> None:
        self.path = path
        self.engine = engine
        self.poll_s = poll_s
        self.lock = FollowerLock(path)
        self._database_id: str | None = None
        self._target: int | None = None
        self._ready = False
        self._index_revision = 0
        self._database_revision = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self) -> IndexStatus:
        return IndexStatus(
            self._ready, self._index_revision, self._database_revision, self.lock.held
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._close()
        self.lock.release()

    def _close(self) -> None:
        """Let go of the writer, if any, once the thread has stopped."""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except (SQLAlchemyError, OSError, ValueError) as exc:
                # The database or the disk is away: keep serving what the folder holds.
                log.warning("%s: %s", self.label, exc)
            self._stop.wait(self.poll_s)

    def step(self) -> None:
        raise NotImplementedError

    def _look(self) -> tuple[int, str]:
        """The database's newest revision and its id; the first look also fixes the revision
        to reach before ready."""
        database_revision = newest_revision(self.engine)
        if self._database_id is None:
            self._database_id = database_id(self.engine)
        if self._target is None:
            self._target = database_revision
        return database_revision, self._database_id

    def _progress(self, revision: int, _target: int) -> None:
        """A commit of this process's writer (`on_progress` of its catch-up): its searches
        see it before its status (and so /readyz) says so, or a client that waits for the
        revision could search the commit before it."""
        if self.index is not None:
            self.index.reload()
        self._index_revision = revision

    def _reached(self, revision: int) -> None:
        """The folder holds the database's changes up to `revision`."""
        self._index_revision = revision
        self._ready = self._ready or revision >= (self._target or 0)


class Follower(Polling):
    """One process's view of its search index folder: until ready, searches answer 503
    (plain lists and details never wait for it)."""

    name = "index-follower"
    label = "search index follower"

    def __init__(self, settings: Settings, engine: Engine) -> None:
        super().__init__(index_path(settings), engine, settings.index_poll_s)
        self.language = settings.language
        self.index: SearchIndex | None = None
        self._writer: tantivy.IndexWriter | None = None

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None

    def step(self) -> None:
        """One look: apply the database's new changes (as the writer), or reload (as a reader)."""
        database_revision, db_id = self._look()
        if self._writer is not None and (next_folder(self.path) / READY_FILE).exists():
            # A rebuild is ready: let go of the old index, adopt the new one, write that.
            self._writer.wait_merging_threads()
            self._writer = None
            adopt_next(self.path, self.engine)
        if self._writer is None and self.lock.acquire():
            self.index = SearchIndex.open_for(self.path, db_id, self.language)
            self._writer = self.index.writer(FOLLOWER_HEAP_BYTES, 1)
        if self._writer is not None and self.index is not None:
            apply_changes(
                self.index,
                self._writer,
                self.engine,
                on_progress=self._progress,
                stopping=self._stop.is_set,
            )
        elif self.index is None:
            self.index = SearchIndex.open(self.path)
        else:
            self.index.reload()
        self._database_revision = database_revision
        meta = self.index.meta() if self.index is not None else None
        if meta is not None and meta.database_id == db_id:
            self._reached(meta.revision)
        elif meta is not None:
            self.index = None  # another database's: wait for the writer to rebuild it


class LoadIndexer:
    """Feeds a load's written records to the index as its batches commit, so the index is
    built beside the database writes instead of read back from the database after them.

    Only when no one else follows the folder (the lock is free). At the end the index claims
    the database's newest revision only if the load's own batches took every revision since
    it started; if another writer wrote meanwhile, the records fed may be stale, so the index
    claims the revision it started from and `apply_changes` goes over everything since.
    """

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.path = index_path(settings)
        self.lock = FollowerLock(self.path)
        self.index: SearchIndex | None = None
        self._writer: tantivy.IndexWriter | None = None
        self._start = 0
        self._revisions = 0

    def __enter__(self) -> "LoadIndexer":
        if self.lock.acquire():
            db_id = database_id(self.engine)
            self.index = SearchIndex.open_for(self.path, db_id, self.settings.language)
            # A thread per core (up to four): indexing, not the database, is a load's
            # slowest stage, and the readers and the writer mostly wait on it.
            threads = min(4, cores())
            self._writer = self.index.writer(BULK_HEAP_BYTES * threads, threads)
            self._start = apply_changes(self.index, self._writer, self.engine)
        return self

    def add(self, written: Iterable[Article], revisions: int) -> None:
        """Index what one committed batch wrote, and the revisions it took."""
        if self._writer is None:
            return
        _replace(self._writer, {article[0]: article for article in written})
        self._revisions += revisions

    def finish(self, on_progress: OnProgress | None = None) -> bool:
        """Commit and bring the index up to date; False when a server follows it instead."""
        if self._writer is None or self.index is None:
            return catch_up(self.settings, self.engine, on_progress=on_progress)
        meta = self.index.meta()
        assert meta is not None
        newest = newest_revision(self.engine)
        alone = newest == self._start + self._revisions
        _commit(self._writer, replace(meta, revision=newest if alone else self._start))
        self.index.reload()
        apply_changes(self.index, self._writer, self.engine, on_progress=on_progress)
        return True

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._writer is None:
            return
        self._writer.wait_merging_threads()
        self._writer = None
        self.lock.release()
        # Another load may have committed as this one let go; a failed load leaves it all.
        if exc_type is None and behind(self.settings, self.engine):
            catch_up(self.settings, self.engine)
