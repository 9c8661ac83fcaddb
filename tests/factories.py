"""Valid records and rows with defaults, so a test states only what it cares about."""

import itertools
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Engine

from app.ingest.records import ArticleIn
from app.ingest.validate import record_hash
from app.ingest.writer import BatchCounts, write_batches
from app.text import excerpt

_ids = itertools.count(1)


def record(
    article_id: int | None = None,
    source_id: int = 2,
    title: str | None = None,
    content: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A record as a corpus file would hold it."""
    article_id = article_id if article_id is not None else next(_ids)
    return {
        "title": title if title is not None else f"Article number {article_id}",
        "content": content if content is not None else f"Body of article {article_id}. " * 20,
        "source_id": source_id,
        "article_id": article_id,
        **extra,
    }


def article_in(rec: dict[str, Any]) -> ArticleIn:
    known = {"article_id", "source_id", "title", "content"}
    extra = {k: v for k, v in rec.items() if k not in known} or None
    return ArticleIn(
        rec["article_id"],
        rec["source_id"],
        rec["title"],
        rec["content"],
        None if extra is None else orjson.dumps(extra).decode(),
        record_hash(rec["source_id"], rec["title"], rec["content"], extra),
        len(rec["content"].split()),
        excerpt(rec["content"]),
    )


def add_articles(engine: Engine, records: Iterable[dict[str, Any]]) -> BatchCounts:
    """Write records through the real writer; the summed counts."""
    inserted = updated = unchanged = 0
    for counts in write_batches(engine, (article_in(r) for r in records), batch_size=500):
        inserted += counts.inserted
        updated += counts.updated
        unchanged += counts.unchanged
    return BatchCounts(inserted, updated, unchanged)
