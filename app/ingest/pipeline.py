"""Wires the ingest stages together and keeps the tally.

    files → read_values → [FieldMap.apply] → [name_sources] → validate → write_batches

Every stage is a generator, so memory is a few batches at any input size: the one being
written, on PostgreSQL the next one being staged, and the batches read ahead by the readers.
On two or more cores a large load runs the stages before the writer in worker processes
(app/ingest/prefetch.py), unless records name their sources: naming needs the database.
Processes, not threads: the GIL would serialise parsing with the writer's own Python work.

Each phase that writes (sources, suspending the indexes, each batch, the rebuild, the final
checkpoint on SQLite) is one transaction that waits out other writers (app/writes/busy.py), so
loads started together into one database all finish, each record stored once.
"""

import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from app.files import gzipped
from app.ingest import indexes, prefetch
from app.ingest.fields import FieldMap
from app.ingest.readers import MappedReads, iter_files, sources_files
from app.ingest.records import ArticleIn, Located, OnReject, Reject
from app.ingest.sources import SourceNames, load_sources, name_sources
from app.ingest.validate import validate
from app.ingest.writer import BatchCounts, settle, write_batches
from app.settings import DEFAULT_MAX_CONTENT_BYTES
from app.writes.busy import while_busy

DEFAULT_BATCH_SIZE = 2000


@dataclass(slots=True)
class Summary:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    suppressed: int = 0  # taken down: not written (app/takedowns.py)
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)
    # For progress only; not part of the reported summary.
    bytes_read: int = field(default=0, repr=False)
    bytes_total: int | None = field(default=None, repr=False)

    @property
    def records_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    @property
    def done(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.rejected + self.suppressed

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def as_dict(self) -> dict[str, int | float]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "suppressed": self.suppressed,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
        }


OnProgress = Callable[[Summary], None]
OnPhase = Callable[[str], None]
OnWritten = Callable[[BatchCounts], None]


def _ignore(_: object) -> None:
    pass


def file_bytes(files: list[Path]) -> int:
    """The files' size on disk (compressed, for a compressed file)."""
    return sum(path.stat().st_size for path in files)


def input_size(files: list[Path]) -> int | None:
    """Total bytes to read, or None when a compressed file hides it."""
    if any(map(gzipped, files)):
        return None
    return file_bytes(files)


def expected_records(paths: list[Path]) -> int:
    """About how many records the files under `paths` hold, by their size (a compressed
    file counts low); 0 when they cannot be read, which the load itself reports."""
    try:
        return file_bytes(list(iter_files(paths))) // indexes.BYTES_PER_RECORD
    except OSError:
        return 0


def _suspend_indexes(engine: Engine, input_bytes: int) -> bool:
    """Drop the deferred indexes when this load should build them after the data: whether
    it will."""
    # An index missing means a killed large load: it needs building anyway, so carry on
    # as that load did and build it once, at the end.
    repair = indexes.needs_repair(engine)
    if not (repair or indexes.should_defer(engine, input_bytes)):
        return False
    if indexes.suspend(engine):
        return True
    return repair  # readers held the table: load with the indexes in place


def ingest(
    paths: Iterable[Path],
    engine: Engine,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_reject: OnReject,
    sources: Path | None = None,
    dry_run: bool = False,
    field_map: FieldMap | None = None,
    on_progress: OnProgress = _ignore,
    on_phase: OnPhase = _ignore,
    on_written: OnWritten = _ignore,
    child_reader: bool | None = None,
    max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
) -> Summary:
    """Load every record under `paths`; bad ones go to `on_reject`, the rest are upserted.

    A dry run reads, maps and validates everything and counts what it would write, but
    writes nothing (not even new source names). A record whose content is over
    `max_content_bytes` is rejected. Each committed batch goes to `on_written`
    (a search index fed during the load). `child_reader` turns the child-process reader on
    or off; by default a large load on two or more cores uses it.
    """
    summary = Summary()
    roots = list(paths)
    files = list(iter_files(roots))
    summary.bytes_total = input_size(files)
    raw_bytes = file_bytes(files)
    names_sources = field_map is not None and "source_id" in field_map.targets
    if child_reader is None:
        child_reader = prefetch.available(raw_bytes)

    def count_reject(reject: Reject) -> None:
        summary.rejected += 1
        on_reject(reject)

    with ExitStack() as stack:
        reader = None
        if child_reader and not names_sources:
            # Forked before this run opens a connection; it reads while we prepare.
            reader = stack.enter_context(
                prefetch.ChildReader(
                    files, field_map, batch_size, max_content_bytes=max_content_bytes
                )
            )

        deferred = False if dry_run else while_busy(lambda: _suspend_indexes(engine, raw_bytes))

        for sources_path in ([sources] if sources else []) + list(sources_files(roots)):
            load_sources(engine, sources_path, count_reject, dry_run=dry_run)

        records: Iterable[ArticleIn]
        source: prefetch.ChildReader | MappedReads  # what counts the bytes read
        if reader is not None:
            source, records = reader, reader.records(count_reject)
        else:
            source = MappedReads(files, field_map, count_reject)
            values: Iterable[Located] = source
            if names_sources:
                values = name_sources(source, SourceNames(engine, dry_run=dry_run), count_reject)
            records = validate(values, count_reject, max_content_bytes)
        for counts in write_batches(engine, records, batch_size, dry_run=dry_run):
            summary.inserted += counts.inserted
            summary.updated += counts.updated
            summary.unchanged += counts.unchanged
            summary.suppressed += counts.suppressed
            summary.bytes_read = source.bytes_read
            on_written(counts)
            on_progress(summary)
    if deferred:
        on_phase("building the deferred indexes")
        while_busy(lambda: indexes.rebuild(engine))
        settle(engine)
    # Reader rejects (malformed lines) never became values; they were read all the same.
    summary.read = summary.done
    summary.seconds = time.perf_counter() - summary.started
    return summary
