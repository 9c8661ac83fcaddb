"""Streamed export of articles as ingestible records: JSON Lines or CSV, in flat memory.

Knows nothing of HTTP: `export_chunks` yields bytes for the CLI to write to a file and for
the API to stream. It walks article_id in keyset batches (never OFFSET, never the whole
result in memory) inside one read transaction, so the export is one consistent snapshot.

Each record is what ingest reads: the known fields and the news fields (`published_at` in
RFC 3339, `url`, `author`; left out of a JSON line when null, empty in CSV), plus the kept
extra fields back at the top level as they came in (JSON Lines), or as a JSON object in the
`extra` column (CSV). Ingesting an export gives identical rows.
"""

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, select

from app import models
from app.errors import ServiceUnavailable
from app.files import CSV_SUFFIX, logical_suffix
from app.queries.articles import ArticleFilter, filter_clauses
from app.search import matching
from app.search.index import SearchIndex

EXPORT_BATCH_ROWS = 500  # ~1.5 MB of bodies per chunk
CSV_COLUMNS = (
    "article_id",
    "source_id",
    "title",
    "content",
    "published_at",
    "url",
    "author",
    "extra",
)
NEWS_COLUMNS = ("published_at", "url", "author")


class Format(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"

    @classmethod
    def of_file(cls, path: Path | None) -> "Format":
        """What a file's name asks for (`.csv`, `.csv.gz`: CSV), as ingest reads it back;
        JSON Lines for any other name and for stdout."""
        if path is not None and logical_suffix(path) == CSV_SUFFIX:
            return cls.CSV
        return cls.JSONL


MEDIA_TYPES = {Format.JSONL: "application/x-ndjson", Format.CSV: "text/csv"}


def export_rows(
    connection: Connection,
    flt: ArticleFilter,
    *,
    batch_rows: int = EXPORT_BATCH_ROWS,
    index: SearchIndex | None = None,
    limit: int | None = None,
) -> Iterator[Sequence[Row[Any]]]:
    """Batches of CSV_COLUMNS in article_id order, the first `limit` rows of them when
    given. A search needs `index`, which names the
    matching ids."""
    article = models.article_table
    stmt = select(*(article.c[name] for name in CSV_COLUMNS)).where(*filter_clauses(flt))
    query = flt.search
    if query is not None:
        if query.matches_nothing:
            return
        if index is None:
            raise ServiceUnavailable("Search is not available: there is no search index.")
        view = index.view()  # one commit for the ids and their count
        searcher = view.searcher
        compiled = matching.compile_search(view, query, flt)
        wanted = matching.count(searcher, compiled)
        wanted = wanted if limit is None else min(limit, wanted)
        ids = matching.by_id(searcher, compiled, max(wanted, 1), descending=False)
        for start in range(0, len(ids), batch_rows):
            chunk = ids[start : start + batch_rows]
            batch = connection.execute(
                stmt.where(article.c.article_id.in_(chunk)).order_by(article.c.article_id)
            ).all()
            if batch:
                yield batch
        return
    last = 0
    remaining = limit
    while remaining is None or remaining > 0:
        rows = batch_rows if remaining is None else min(batch_rows, remaining)
        batch = connection.execute(
            stmt.where(article.c.article_id > last).order_by(article.c.article_id).limit(rows)
        ).all()
        if not batch:
            return
        yield batch
        last = batch[-1].article_id
        remaining = None if remaining is None else remaining - len(batch)


def _jsonl(rows: Sequence[Row[Any]]) -> bytes:
    dumps, utc_z = orjson.dumps, orjson.OPT_UTC_Z
    return b"".join(
        dumps(
            {
                "article_id": r.article_id,
                "source_id": r.source_id,
                "title": r.title,
                "content": r.content,
                **{name: r._mapping[name] for name in NEWS_COLUMNS if r._mapping[name] is not None},
                **(r.extra or {}),
            },
            option=utc_z,
        )
        + b"\n"
        for r in rows
    )


def _rfc3339(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat().replace("+00:00", "Z")


def _csv(rows: Sequence[Row[Any]], *, header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(
        (
            r.article_id,
            r.source_id,
            r.title,
            r.content,
            _rfc3339(r.published_at),
            r.url or "",
            r.author or "",
            "" if r.extra is None else orjson.dumps(r.extra).decode(),
        )
        for r in rows
    )
    return out.getvalue().encode("utf-8")


def export_chunks(
    engine: Engine,
    flt: ArticleFilter,
    fmt: Format,
    *,
    batch_rows: int = EXPORT_BATCH_ROWS,
    index: SearchIndex | None = None,
    limit: int | None = None,
) -> Iterator[bytes]:
    """The export as byte chunks, one per batch. Opens its own connection; closing the
    generator (a client gone, a finished response) closes it."""
    connection = engine.connect()
    try:
        if connection.dialect.name == "postgresql":
            # One snapshot for the whole walk, as SQLite's read transaction gives.
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            if fmt is Format.CSV:
                yield _csv([], header=True)
            rows_of = export_rows(connection, flt, batch_rows=batch_rows, index=index, limit=limit)
            for rows in rows_of:
                yield _jsonl(rows) if fmt is Format.JSONL else _csv(rows, header=False)
    finally:
        connection.close()
