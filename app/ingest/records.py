"""The values that flow between ingest stages.

An ArticleIn is a NamedTuple: it builds faster than a frozen dataclass, it is already the
row the stores send (app/ingest/stores.py), and it crosses from the reader processes
(app/ingest/prefetch.py) as a plain tuple.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Located:
    """A parsed JSON value and where it started: 1-based line, and index within an array."""

    path: str
    line: int
    value: object
    raw: str | bytes
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that will not load, and why. Printed as `file:line: reason`."""

    path: str
    line: int
    reason: str
    raw: str = ""
    index: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        if self.index is not None:
            where += f" [{self.index}]"
        return f"{where}: {self.reason}"


class ArticleIn(NamedTuple):
    """A validated record, ready to write: its fields in RECORD_COLUMNS order (stores.py).

    `extra` is the JSON text of the fields beyond the known ones, serialised once during
    validation, so a record crosses from a reader process as plain strings and numbers.
    """

    article_id: int
    source_id: int
    title: str
    content: str
    extra: str | None
    content_hash: str
    word_count: int
    excerpt: str
    published_at: datetime | None = None  # UTC
    url: str | None = None
    author: str | None = None


OnReject = Callable[[Reject], None]


def raw_text(raw: str | bytes, limit: int = 1 << 20) -> str:
    """The raw text of a record for reports, decoded leniently and capped."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:limit]
