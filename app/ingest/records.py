"""The values that flow between ingest stages."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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


@dataclass(frozen=True, slots=True)
class ArticleIn:
    """A validated record, ready to write."""

    article_id: int
    source_id: int
    title: str
    content: str
    extra: dict[str, Any] | None
    content_hash: str
    word_count: int


OnReject = Callable[[Reject], None]


def raw_text(raw: str | bytes, limit: int = 1 << 20) -> str:
    """The raw text of a record for reports, decoded leniently and capped."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text[:limit]
