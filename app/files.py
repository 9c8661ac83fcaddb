"""Files named by how they are stored: a `.gz` name is gzip, written as it is read
(app/ingest/readers.py opens `.gz` inputs the same way)."""

import gzip
from pathlib import Path
from typing import IO, cast

CSV_SUFFIX = ".csv"  # what ingest reads as CSV, and what export writes CSV for


def logical_suffix(path: Path) -> str:
    """The suffix that says what a file holds, under any `.gz`: `x.csv.gz` -> `.csv`."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()


def open_for_write(path: Path) -> IO[bytes]:
    """`path` opened for writing bytes, gzip-compressed (fast level) for a `.gz` name."""
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
    return path.open("wb")
