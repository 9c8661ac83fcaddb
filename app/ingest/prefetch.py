"""Read, map and validate in a process pool, so parsing overlaps the writes.

    worker k: files → read_values → [FieldMap.apply] → validate (the slices it is given)
    parent:   write_batches ← records ← (rejects reported, then records) ← slices in order

Parsing and validating a record costs more than SQLite's write of it, and threads cannot
overlap the two: the GIL serialises them. So a `ProcessPoolExecutor` runs the stages
before the writer on the other cores. The input is cut into slices of a few hundred
records in input order, and slice j is one task. Shipping parsed values to the workers
would cost more than parsing them, so each worker reads the input itself, from a reader
it keeps open: the pool hands out tasks in order, so a worker asked for slice j reads on
from where its last slice ended, skipping (not validating) the slices other workers took.
The parent keeps a few tasks in flight and takes their results in order, so records and
rejects arrive in input order whatever the number of workers.

What the in-process pipeline promises still holds:
- Rejects come out in file order, and a batch's rejects before the batch is written (a
  slice never straddles two batches), so a run stopped by a database error has reported
  exactly what an in-process run would have. A reject met between records belongs to the
  slice of the record after it.
- Workers never touch the database. They are forked before the load opens a connection,
  and freeze what they inherited (gc.freeze), so no inherited object is finalised in them.
- They die with the parent: each watches a pipe that only the parent holds open, and
  leaves when it closes, however the parent ended. The parent shuts the pool down on any
  error of its own.
- Memory stays flat and small: at most one slice per worker and a batch's worth more are
  in flight or waiting, and a slice is a fraction of a batch.
- An error in a worker (reading or validating) comes back with the slice it fell in, in
  order, after the rejects met before it in that slice.
"""

import gc
import multiprocessing
import os
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from app.cpus import cores
from app.ingest.fields import FieldMap
from app.ingest.readers import MappedReads
from app.ingest.records import ArticleIn, Located, OnReject, Reject
from app.ingest.validate import check, rejected
from app.settings import DEFAULT_MAX_CONTENT_BYTES

# Worth the workers only when there is a second core and enough to read.
MIN_INPUT_BYTES = 4 << 20
MAX_READERS = 2
READ_AHEAD_BATCHES = 1  # slices done and waiting, beyond one per worker: a batch's worth
# Records per slice (one task), when the batch size allows: small slices keep what the
# workers and the parent hold in flight small, and cost little more in task overhead.
SLICE_RECORDS = 500
# A slice's result: (records, rejects, bytes read so far, error text or None, last slice?).
Frame = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int, str | None, bool]


def available(input_bytes: int) -> bool:
    """Whether worker readers pay here: Linux (fork), 2+ cores, and megabytes to read."""
    return sys.platform == "linux" and cores() >= 2 and input_bytes >= MIN_INPUT_BYTES


def slice_size(batch_size: int) -> int:
    """Records per slice: a divisor of `batch_size`, so no slice straddles two batches, near
    SLICE_RECORDS; the whole batch when no divisor comes near."""
    if batch_size <= SLICE_RECORDS:
        return batch_size
    divisor = max(d for d in range(1, SLICE_RECORDS + 1) if batch_size % d == 0)
    return divisor if divisor * 4 >= SLICE_RECORDS else batch_size


class ChildReader:
    """The pool of reader processes and the slices in flight; a context manager that always
    shuts the pool down."""

    def __init__(
        self,
        files: list[Path],
        field_map: FieldMap | None,
        batch_size: int,
        readers: int | None = None,
        max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
    ) -> None:
        self.bytes_read = 0
        count = readers if readers is not None else min(MAX_READERS, cores())
        lifeline_r, lifeline_w = os.pipe()
        try:
            # fork: the workers start at once, before the load opens its connections, and
            # share the parent's imported modules instead of importing them again.
            self._pool = ProcessPoolExecutor(
                count,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(
                    lifeline_r,
                    lifeline_w,
                    files,
                    field_map,
                    slice_size(batch_size),
                    max_content_bytes,
                ),
            )
            self._in_flight: deque[Future[Frame | None]] = deque()
            self._next_slice = 0
            for _ in range(count + READ_AHEAD_BATCHES * batch_size // slice_size(batch_size)):
                self._submit()
        except BaseException:
            os.close(lifeline_w)
            raise
        finally:
            os.close(lifeline_r)
        self._lifeline = lifeline_w  # held open by this process alone: closed, workers leave

    def _submit(self) -> None:
        self._in_flight.append(self._pool.submit(_read_slice, self._next_slice))
        self._next_slice += 1

    def records(self, on_reject: OnReject) -> Iterator[ArticleIn]:
        """The records in input order; each slice's rejects go to `on_reject` first."""
        while True:
            frame = self._in_flight.popleft().result()
            self._submit()
            if frame is None:
                raise ChildProcessError("the reader process lost its place in the input")
            records, rejects, self.bytes_read, error, last = frame
            for reject in rejects:
                on_reject(Reject(*reject))
            if error is not None:
                raise ChildProcessError(f"the reader process failed: {error}")
            for record in records:
                # The worker built each from an ArticleIn; skip _make's Python-level checks.
                yield tuple.__new__(ArticleIn, record)
            if last:
                return

    def close(self) -> None:
        for future in self._in_flight:
            future.cancel()
        # Running tasks end within a slice or two of reading; the workers then exit.
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1

    def __enter__(self) -> "ChildReader":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _SliceReader:
    """A worker's reader: one pass over the input, validating only the slices asked for."""

    def __init__(
        self,
        files: list[Path],
        field_map: FieldMap | None,
        slice_size: int,
        max_content_bytes: int,
    ) -> None:
        self.slice_size = slice_size
        self.max_content_bytes = max_content_bytes
        self.position = 0  # values read so far: the same count in every worker
        self.wanted = -1  # the slice being validated; rejects met in others are dropped
        self.rejects: list[tuple[Any, ...]] = []
        self.counted = MappedReads(files, field_map, self._keep)
        self.values: Iterator[Located] | None = (
            None  # opened by the first slice, which reports its errors
        )
        self.pending: Located | None = None  # read, but the first of a later slice
        self.done = False
        self.failed: str | None = None

    def _keep(self, reject: Reject) -> None:
        if self.position // self.slice_size == self.wanted:  # met before the value here
            self.rejects.append(tuple(rejected_fields(reject)))

    def read(self, number: int) -> Frame | None:
        """Slice `number`: its records and rejects, or None past the end of the input."""
        if self.failed is not None or self.position // self.slice_size > number:
            return None  # another worker's slice failed first, or tasks came out of order
        if self.done:
            return None
        self.wanted = number
        self.rejects = []
        records: list[tuple[Any, ...]] = []
        end = (number + 1) * self.slice_size
        try:
            if self.values is None:
                self.values = iter(self.counted)
            while self.position < end:
                item = next(self.values, None)
                if item is None:
                    self.done = True
                    break
                if self.position // self.slice_size == number:
                    result = check(item, self.max_content_bytes)
                    if isinstance(result, str):
                        self.rejects.append(rejected_fields(rejected(item, result)))
                    else:
                        records.append(tuple(result))  # plain tuples pickle smaller
                self.position += 1
        except Exception:  # noqa: BLE001 - reported to the parent, which fails the run
            self.failed = traceback.format_exc(limit=-1).strip().splitlines()[-1]
            if self.position // self.slice_size != number:
                return None  # the slice it fell in is another worker's: that one reports it
            return records, self.rejects, self.counted.bytes_read, self.failed, True
        if self.done and self.position // self.slice_size < number:
            return None  # the input ended in an earlier slice, which said so
        return records, self.rejects, self.counted.bytes_read, None, self.done


def rejected_fields(reject: Reject) -> tuple[Any, ...]:
    return (reject.path, reject.line, reject.reason, reject.raw, reject.index)


_reader: _SliceReader | None = None


def _start_worker(
    lifeline_r: int,
    lifeline_w: int,
    files: list[Path],
    field_map: FieldMap | None,
    slice_size: int,
    max_content_bytes: int,
) -> None:
    """A worker's setup: its own reader, and an exit as soon as the parent is gone."""
    global _reader
    gc.freeze()  # inherited objects (connections among them) are never collected here
    os.close(lifeline_w)  # the parent's alone, so the pipe closes when the parent ends
    threading.Thread(target=_leave_with_parent, args=(lifeline_r,), daemon=True).start()
    _reader = _SliceReader(files, field_map, slice_size, max_content_bytes)


def _leave_with_parent(lifeline_r: int) -> None:
    os.read(lifeline_r, 1)  # nothing is ever written: returns at end of file
    os._exit(1)


def _read_slice(number: int) -> Frame | None:
    assert _reader is not None
    return _reader.read(number)
