"""Reads of the source table, with article counts. Knows nothing of HTTP.

Counting a million articles per source is a scan of the (source_id, article_id) index, so
the counts are kept in the per-revision cache: any write to an article raises the newest
revision and so recounts. Names are read fresh each time (a sources file can rename a
source without touching an article).
"""

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Dialect, bindparam, func, select
from sqlmodel import Session

from app import models
from app.errors import NotFound
from app.queries.cache import RevisionCache, newest_revision
from app.queries.prepared import Prepared

COUNTS_KEY = "source-article-counts"


@dataclass(frozen=True, slots=True)
class SourceRow:
    source_id: int
    name: str | None
    article_count: int


def _counts(session: Session, cache: RevisionCache) -> dict[int, int]:
    article = models.article_table
    stmt = select(article.c.source_id, func.count()).group_by(article.c.source_id)

    def compute() -> dict[int, int]:
        return {int(row[0]): int(row[1]) for row in session.execute(stmt)}

    return cache.get_or_compute(COUNTS_KEY, newest_revision(session), compute)


def list_sources(session: Session, cache: RevisionCache) -> list[SourceRow]:
    """Every source by id, with how many articles each has."""
    source = models.source_table
    counts = _counts(session, cache)
    rows = session.execute(select(source.c.source_id, source.c.name).order_by(source.c.source_id))
    return [SourceRow(r.source_id, r.name, counts.get(r.source_id, 0)) for r in rows]


def get_source(session: Session, source_id: int, cache: RevisionCache) -> SourceRow:
    source = models.source_table
    row = session.execute(
        select(source.c.source_id, source.c.name).where(source.c.source_id == source_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"No source with source_id {source_id}.")
    return SourceRow(row.source_id, row.name, _counts(session, cache).get(source_id, 0))


@lru_cache(maxsize=8)  # one entry per engine's dialect: one in production
def _prepared_exists(dialect: Dialect) -> Prepared:
    source = models.source_table
    stmt = select(source.c.source_id).where(source.c.source_id == bindparam("source_id"))
    return Prepared.of(stmt, dialect, driver_values=True)


def ensure_source_exists(session: Session, source_id: int) -> None:
    """Raise NotFound unless the source exists: a primary-key probe, a single read."""
    exists = _prepared_exists(session.get_bind().dialect)
    if not exists.rows(session, {"source_id": source_id}):
        raise NotFound(f"No source with source_id {source_id}.")
