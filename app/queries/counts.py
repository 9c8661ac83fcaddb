"""Totals and facets for a filtered (and searched) article list.

Counting every match of a common word is the slowest thing a page can ask for, so exact
totals and facets are cached per (filters, search) and data revision (see `cache.py`).
Knows nothing of HTTP.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlmodel import Session

from app import models
from app.queries import search
from app.queries.cache import RevisionCache, newest_revision
from app.queries.filters import ArticleFilter, where_clauses
from app.queries.ranking import cached_ranking


class CountMode(StrEnum):
    NONE = "none"
    EXACT = "exact"
    ESTIMATED = "estimated"


class Facet(StrEnum):
    SOURCE_ID = "source_id"


@dataclass(frozen=True, slots=True)
class Total:
    value: int | None
    is_exact: bool | None


def _cache_key(kind: str, dialect: str, flt: ArticleFilter) -> str:
    return orjson.dumps([kind, dialect, *flt.fingerprint_parts()]).decode()


def count_articles(session: Session, flt: ArticleFilter) -> int:
    """COUNT over the same filters and search as the pages (no cursor, no limit)."""
    dialect = session.get_bind().dialect.name
    query = flt.search
    if query is not None and query.matches_nothing:
        return 0
    if dialect == "sqlite" and query is not None and query.ranked and not flt.narrowed:
        return int(session.execute(search.fts_count(query)).scalar_one())  # index only
    stmt = select(func.count()).select_from(models.article_table)
    return int(session.execute(stmt.where(*where_clauses(dialect, flt))).scalar_one())


def estimate_articles(session: Session, flt: ArticleFilter) -> int:
    """PostgreSQL's planner estimate of the row count (fresh after ANALYZE)."""
    query = flt.search
    if query is None and not flt.narrowed:
        reltuples = session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = 'article'::regclass")
        ).scalar_one()
        if reltuples >= 0:  # -1: never analysed
            return int(reltuples)
    stmt = select(models.article_table.c.article_id).where(*where_clauses("postgresql", flt))
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    plan: Any = connection.exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + str(compiled), dict(compiled.params)
    ).scalar_one()
    if isinstance(plan, str | bytes):
        plan = orjson.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def total(session: Session, flt: ArticleFilter, mode: CountMode, cache: RevisionCache) -> Total:
    """The `total` a page reports: none, exact (cached per revision) or estimated."""
    if mode is CountMode.NONE:
        return Total(None, None)
    dialect = session.get_bind().dialect.name
    if mode is CountMode.ESTIMATED and dialect == "postgresql":
        query = flt.search
        if query is not None and query.matches_nothing:
            return Total(0, True)
        return Total(estimate_articles(session, flt), False)
    # SQLite has no cheap estimate; its exact count is what `estimated` gives there.
    revision = newest_revision(session)
    ranking = cached_ranking(session, flt, cache, revision)
    if ranking is not None:  # a search already ranked at this revision: its length is the count
        return Total(len(ranking), True)
    key = _cache_key("count", dialect, flt)
    return Total(cache.get_or_compute(key, revision, lambda: count_articles(session, flt)), True)


def source_facets(session: Session, flt: ArticleFilter) -> list[dict[str, int]]:
    """Matches per source under the same filters: most first, then by source_id."""
    dialect = session.get_bind().dialect.name
    query = flt.search
    if query is not None and query.matches_nothing:
        return []
    source_id = models.article_table.c.source_id
    n = func.count().label("n")
    stmt = (
        select(source_id, n)
        .where(*where_clauses(dialect, flt))
        .group_by(source_id)
        .order_by(n.desc(), source_id)
    )
    return [{"value": value, "count": count} for value, count in session.execute(stmt)]


def facets(
    session: Session, flt: ArticleFilter, asked: list[Facet], cache: RevisionCache
) -> dict[str, list[dict[str, int]]]:
    """Each asked facet (only `source_id` exists), cached per revision like totals."""
    if not asked:
        return {}
    dialect = session.get_bind().dialect.name
    revision = newest_revision(session)
    key = _cache_key("facet:source_id", dialect, flt)
    values = cache.get_or_compute(key, revision, lambda: source_facets(session, flt))
    return {Facet.SOURCE_ID.value: values}
