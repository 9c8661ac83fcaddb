"""Wires the ingest stages together and keeps the tally."""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from app.ingest.readers import iter_files, read_values, sources_files
from app.ingest.records import OnReject, Reject
from app.ingest.sources import load_sources
from app.ingest.validate import validate
from app.ingest.writer import write_batches

DEFAULT_BATCH_SIZE = 1000


@dataclass(slots=True)
class Summary:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def records_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, int | float]:
        return {
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
        }


def ingest(
    paths: Iterable[Path],
    engine: Engine,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_reject: OnReject,
    sources: Path | None = None,
) -> Summary:
    """Load every record under `paths`; bad ones go to `on_reject`, the rest are upserted."""
    summary = Summary()
    roots = list(paths)

    def count_reject(reject: Reject) -> None:
        summary.rejected += 1
        on_reject(reject)

    for sources_path in ([sources] if sources else []) + list(sources_files(roots)):
        load_sources(engine, sources_path, on_reject)

    values = (v for path in iter_files(roots) for v in read_values(path, count_reject))
    for counts in write_batches(engine, validate(values, count_reject), batch_size):
        summary.inserted += counts.inserted
        summary.updated += counts.updated
        summary.unchanged += counts.unchanged
    # Reader rejects (malformed lines) never became values; they were read all the same.
    summary.read = summary.inserted + summary.updated + summary.unchanged + summary.rejected
    summary.seconds = time.perf_counter() - summary.started
    return summary
