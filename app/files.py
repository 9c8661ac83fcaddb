"""Files named by how they are stored: a `.gz` name is gzip, written as ingest reads it
(app/ingest/readers.py), and the suffix under it says what the file holds."""

import gzip
from pathlib import Path
from typing import IO, cast

CSV_SUFFIX = ".csv"  # what ingest reads as CSV, and what export writes CSV for
GZIP_SUFFIX = ".gz"


def gzipped(path: Path) -> bool:
    """Whether `path` is gzip by its name: read and written compressed."""
    return path.name.endswith(GZIP_SUFFIX)


def logical_suffix(path: Path) -> str:
    """The suffix that says what a file holds, under any `.gz`: `x.csv.gz` -> `.csv`."""
    name = path.name.removesuffix(GZIP_SUFFIX)
    return Path(name).suffix.lower()


def open_for_write(path: Path) -> IO[bytes]:
    """`path` opened for writing bytes, gzip-compressed (fast level) for a `.gz` name."""
    if gzipped(path):
        return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
    return path.open("wb")
