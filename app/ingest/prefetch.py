"""Read, map and validate in forked child processes, so parsing overlaps the writes.

    child k: files → read_values → [FieldMap.apply] → validate (its slices) → frames ─┐
    parent:  write_batches ← records ← (rejects reported, then records) ← slices in order

Parsing and validating a record costs more than SQLite's write of it, and threads cannot
overlap the two (a reader thread was measured and dropped: sqlite3 hands the GIL back and
forth per statement). Forked children run the stages before the writer on the other cores.
Each reads the whole input (reading is the cheap part), cuts it into slices of `batch_size`
records in input order, and validates only its own: slice j belongs to child j mod N. It
sends each slice down its pipe as one marshal frame: the records as plain tuples, the
rejects met in the slice, and the bytes read so far. The parent takes slice 0, 1, 2, ...
from the pipes in turn, so records and rejects arrive in input order whatever N is.

What the in-process pipeline promises still holds:
- Rejects come out in file order, each slice's before its records are written, so a run
  stopped by a database error has reported exactly what an in-process run would have. A
  reject met between records belongs to the slice of the record after it, in every child.
- Children never touch the database. They freeze what they inherited (gc.freeze), so no
  inherited connection is ever finalised in them, and leave by os._exit, flushing nothing.
- They die with the parent: PR_SET_PDEATHSIG (Linux) kills them when the parent is killed,
  and a write to a pipe nobody reads fails in any case. The parent kills and reaps them on
  any error of its own.
- Memory stays flat: a thread in the parent reads up to READ_AHEAD frames off the pipes
  ahead of the writer (the read releases the GIL), and each child blocks on a full pipe.
  Without that slack the processes waited on each other at every frame: the read-ahead
  made the data phase of a 100k-record load 13% faster (2.96-3.17 s -> 2.51-2.76 s, one
  child). With two children, one frame ahead was as fast as two (2.35-2.44 s against
  2.38-2.54 s) and holds ~7 MB less.
- An error in a child (reading or validating) is reported by the child whose slice it
  fell in, in order; the others stop quietly.
"""

import ctypes
import gc
import marshal
import os
import queue
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from app.ingest.fields import FieldMap
from app.ingest.readers import MappedReads
from app.ingest.records import ArticleIn, OnReject, Reject
from app.ingest.validate import check, rejected

# Worth a fork (about a millisecond) only when there is a second core and enough to read.
MIN_INPUT_BYTES = 4 << 20
MAX_READERS = 2
READ_AHEAD = 1  # frames (a batch each, ~6 MB of 3 KB articles at the default size)
_HEADER = struct.Struct("<Q")
_PR_SET_PDEATHSIG = 1
# A frame: (records, rejects, bytes read so far, error text or None, last frame?).
Frame = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int, str | None, bool]


def available(input_bytes: int) -> bool:
    """Whether a child reader pays here: Linux (fork, parent-death signal), 2+ cores, MBs."""
    return sys.platform == "linux" and cores() >= 2 and input_bytes >= MIN_INPUT_BYTES


def cores() -> int:
    return len(os.sched_getaffinity(0))


class ChildReader:
    """The child processes and their pipes; a context manager that always reaps them."""

    def __init__(
        self,
        files: list[Path],
        field_map: FieldMap | None,
        batch_size: int,
        readers: int | None = None,
    ) -> None:
        self.bytes_read = 0
        count = readers if readers is not None else min(MAX_READERS, cores())
        parent = os.getpid()
        self.pids: list[int | None] = []
        self._pipes: list[IO[bytes]] = []
        try:
            for reader in range(count):
                read_fd, write_fd = os.pipe()
                pid = os.fork()
                if pid == 0:  # a child: never returns
                    os.close(read_fd)
                    for pipe in self._pipes:  # its elder siblings' pipes are not its own
                        pipe.close()
                    slicing = _Slicing(batch_size, reader, count)
                    _run_child(parent, write_fd, files, field_map, slicing)
                os.close(write_fd)
                self.pids.append(pid)
                self._pipes.append(os.fdopen(read_fd, "rb", buffering=1 << 20))
        except BaseException:  # a fork failed (out of processes or memory): undo the others
            self._kill_and_reap()
            for pipe in self._pipes:
                pipe.close()
            raise
        # Raw frames read ahead in slice order, then (None, reader) once a pipe ends early.
        self._frames: queue.Queue[bytes | int] = queue.Queue(READ_AHEAD)
        self._closing = threading.Event()
        self._pump = threading.Thread(
            target=self._read_ahead, name="ingest-read-ahead", daemon=True
        )
        self._pump.start()

    def records(self, on_reject: OnReject) -> Iterator[ArticleIn]:
        """The children's records in input order; each slice's rejects go to `on_reject` first."""
        while True:
            records, rejects, self.bytes_read, error, last = self._next_frame()
            for reject in rejects:
                on_reject(Reject(*reject))
            if error is not None:
                raise ChildProcessError(f"the reader process failed: {error}")
            for record in records:
                # The child built each from an ArticleIn; skip _make's Python-level checks.
                yield tuple.__new__(ArticleIn, record)
            if last:
                self._reap_all()
                return

    def _next_frame(self) -> Frame:
        payload = self._frames.get()
        if isinstance(payload, int):
            how = self._reap(payload)
            raise ChildProcessError(f"the reader process ended early ({how})")
        frame: Frame = marshal.loads(payload)
        return frame

    def _read_ahead(self) -> None:
        """The pump thread: whole frames off the pipes in slice order, until the last."""
        slice_no = 0
        try:
            while True:
                reader = slice_no % len(self._pipes)
                pipe = self._pipes[reader]
                header = pipe.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                (size,) = _HEADER.unpack(header)
                payload = pipe.read(size)
                if len(payload) < size or not self._offer(payload):
                    break
                slice_no += 1
        except (OSError, ValueError):  # a pipe closed under us: the run is over anyway
            pass
        finally:
            # Whatever ended the loop, the writer must not wait for a frame forever. (After
            # the last frame the pipes end too, and nobody reads this.)
            self._offer(slice_no % len(self._pipes))

    def _offer(self, item: bytes | int) -> bool:
        """Queue `item` unless the reader is closing; False when it is."""
        while not self._closing.is_set():
            try:
                self._frames.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _reap(self, reader: int) -> str:
        """Wait for one child; how it ended."""
        pid = self.pids[reader]
        if pid is None:
            return "reaped"
        _, status = os.waitpid(pid, 0)
        self.pids[reader] = None
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exit status {os.waitstatus_to_exitcode(status)}"

    def _reap_all(self) -> None:
        for reader in range(len(self.pids)):
            self._reap(reader)

    def _kill_and_reap(self) -> None:
        for pid in self.pids:
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        self._reap_all()

    def close(self) -> None:
        self._closing.set()
        self._kill_and_reap()
        self._pump.join()  # the children are gone: its reads end, and it queues nothing more
        for pipe in self._pipes:
            pipe.close()

    def __enter__(self) -> "ChildReader":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Slicing:
    """Which slices of the input one child validates and sends: j mod `readers` == `reader`."""

    def __init__(self, batch_size: int, reader: int, readers: int) -> None:
        self.batch_size = batch_size
        self.reader = reader
        self.readers = readers

    def ours(self, position: int) -> bool:
        """Whether the slice holding the record at `position` (0-based) is this child's."""
        return (position // self.batch_size) % self.readers == self.reader

    def ends_slice(self, position: int) -> bool:
        return (position + 1) % self.batch_size == 0


def _run_child(
    parent: int,
    write_fd: int,
    files: list[Path],
    field_map: FieldMap | None,
    slicing: _Slicing,
) -> None:
    """A child's whole life: stream frames into the pipe, then leave without cleanup."""
    code = 1
    try:
        gc.freeze()  # inherited objects (connections among them) are never collected here
        _die_with_parent(parent)
        with os.fdopen(write_fd, "wb") as out:
            code = _send_frames(out, files, field_map, slicing)
    except BaseException:  # noqa: BLE001 - the child must reach os._exit, whatever happened
        code = 1
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _send_frames(
    out: IO[bytes], files: list[Path], field_map: FieldMap | None, slicing: _Slicing
) -> int:
    rejects: list[tuple[Any, ...]] = []
    records: list[tuple[Any, ...]] = []
    position = 0  # records read so far: the same count in every child

    def add(reject: Reject) -> None:
        rejects.append((reject.path, reject.line, reject.reason, reject.raw, reject.index))

    def keep(reject: Reject) -> None:
        if slicing.ours(position):  # met before the record at `position`: its slice
            add(reject)

    counted = MappedReads(files, field_map, keep)
    try:
        values = iter(counted)
        while (item := next(values, None)) is not None:
            if slicing.ours(position):
                result = check(item)
                if isinstance(result, str):
                    add(rejected(item, result))
                else:
                    records.append(tuple(result))  # marshal takes plain tuples only
                if slicing.ends_slice(position):
                    _send(out, (records, rejects, counted.bytes_read, None, False))
                    records.clear()
                    rejects.clear()
            position += 1
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the run
        if not slicing.ours(position):
            return 0  # the slice it fell in is another child's: that child reports it
        error = traceback.format_exc(limit=-1).strip().splitlines()[-1]
        _send(out, (records, rejects, counted.bytes_read, error, True))
        return 1
    if slicing.ours(position):  # the last slice (perhaps only trailing rejects) ends the run
        _send(out, (records, rejects, counted.bytes_read, None, True))
    return 0


def _send(out: IO[bytes], frame: Frame) -> None:
    payload = marshal.dumps(frame)
    out.write(_HEADER.pack(len(payload)))
    out.write(payload)
    out.flush()
