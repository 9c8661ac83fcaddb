"""Totals and facets for a filtered (and searched) article list.

With a search, the search index counts (exactly, and cheaply). Without one, counting a
million rows is a scan, so exact totals and facets are cached per filter and data revision
(see `cache.py`). Knows nothing of HTTP.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Text, func, select, text
from sqlmodel import Session

from app import models
from app.dates import Unit
from app.errors import ServiceUnavailable
from app.queries import semantic
from app.queries.cache import RevisionCache, newest_revision
from app.queries.filters import filter_clauses
from app.queries.semantic import Meaning
from app.search import matching
from app.search.filters import ArticleFilter
from app.search.index import IndexView
from app.search.language import SearchMode
from app.search.matching import MAX_DATE_BUCKETS


class CountMode(StrEnum):
    NONE = "none"
    EXACT = "exact"
    ESTIMATED = "estimated"


class Facet(StrEnum):
    SOURCE_ID = "source_id"
    PUBLISHED_YEAR = "published_at:year"
    PUBLISHED_MONTH = "published_at:month"
    PUBLISHED_DAY = "published_at:day"

    @property
    def unit(self) -> Unit | None:
        """The calendar unit of a date facet."""
        _, _, unit = self.value.partition(":")
        return Unit(unit) if unit else None


FacetValue = dict[str, int | str | None]  # {"value": ..., "count": n}


@dataclass(frozen=True, slots=True)
class Total:
    value: int | None
    is_exact: bool | None


def _cache_key(kind: str, dialect: str, flt: ArticleFilter) -> str:
    return orjson.dumps([kind, dialect, *flt.fingerprint_parts()]).decode()


@dataclass(frozen=True, slots=True)
class ByMeaning:
    """What counting a search by meaning reads: its views and the kept rankings."""

    meaning: Meaning
    cache: RevisionCache | None = None


def _compiled(
    flt: ArticleFilter, index: IndexView | None, by_meaning: ByMeaning | None = None
) -> matching.Compiled | None:
    """The index query of `flt` (None: the database counts). A search needs the index;
    a list without one is counted by the index when the caller passes a view that holds
    every write the database does (see `total`). A search by meaning counts its ranking:
    it has no other set of matches (app/queries/semantic.py)."""
    query = flt.search
    if index is None:
        if query is None:
            return None
        raise ServiceUnavailable("Search is not available: there is no search index.")
    if query is None:
        return matching.compile_filter(flt)
    if flt.mode is not SearchMode.KEYWORD:
        if by_meaning is None:
            raise ServiceUnavailable("Search by meaning is not available: no vector index.")
        found = semantic.ranking(index, by_meaning.meaning, flt, by_meaning.cache)
        return matching.Compiled(matching.ids_query(list(found.ids)), None)
    return matching.compile_search(index, query, flt)


def count_articles(
    session: Session,
    flt: ArticleFilter,
    index: IndexView | None = None,
    by_meaning: ByMeaning | None = None,
) -> int:
    """How many articles match the same filters and search as the pages."""
    query = flt.search
    if query is not None and query.matches_nothing:
        return 0
    compiled = _compiled(flt, index, by_meaning)
    if compiled is not None and index is not None:
        return matching.count(index.searcher, compiled)
    stmt = select(func.count()).select_from(models.article_table)
    return int(session.execute(stmt.where(*filter_clauses(flt))).scalar_one())


def estimate_articles(session: Session, flt: ArticleFilter) -> int:
    """PostgreSQL's planner estimate of the row count, without a search (fresh after ANALYZE)."""
    if not flt.narrowed:
        reltuples = session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = 'article'::regclass")
        ).scalar_one()
        if reltuples >= 0:  # -1: never analysed
            return int(reltuples)
    stmt = select(models.article_table.c.article_id).where(*filter_clauses(flt))
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    plan: Any = connection.exec_driver_sql(
        "EXPLAIN (FORMAT JSON) " + str(compiled), dict(compiled.params)
    ).scalar_one()
    if isinstance(plan, str | bytes):
        plan = orjson.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def total(
    session: Session,
    flt: ArticleFilter,
    mode: CountMode,
    cache: RevisionCache,
    index: IndexView | None = None,
    meaning: Meaning | None = None,
) -> Total:
    """The `total` a page reports: none, exact, or estimated (PostgreSQL without a search;
    exact everywhere else, since an exact search count is as cheap). For a search by
    meaning, the number of hits its ranking holds.

    Given `index`, the index counts: for a search, always; for a list without one, the
    caller passes a view only when it has applied the database's newest revision, so the
    index's count (a few milliseconds at a million) is the database's exact count.
    """
    if mode is CountMode.NONE:
        return Total(None, None)
    if flt.search is not None or index is not None:
        by_meaning = None if meaning is None else ByMeaning(meaning, cache)
        return Total(count_articles(session, flt, index, by_meaning), True)
    dialect = session.get_bind().dialect.name
    if mode is CountMode.ESTIMATED and dialect == "postgresql":
        return Total(estimate_articles(session, flt), False)
    revision = newest_revision(session)
    key = _cache_key("count", dialect, flt)
    return Total(cache.get_or_compute(key, revision, lambda: count_articles(session, flt)), True)


def source_facets(
    session: Session,
    flt: ArticleFilter,
    index: IndexView | None = None,
    by_meaning: ByMeaning | None = None,
) -> list[dict[str, int]]:
    """Matches per source under the same filters: most first, then by source_id."""
    query = flt.search
    if query is not None and query.matches_nothing:
        return []
    compiled = _compiled(flt, index, by_meaning)
    if compiled is not None and index is not None:
        return matching.source_counts(index.searcher, compiled)
    source_id = models.article_table.c.source_id
    n = func.count().label("n")
    stmt = (
        select(source_id, n)
        .where(*filter_clauses(flt))
        .group_by(source_id)
        .order_by(n.desc(), source_id)
    )
    return [{"value": value, "count": count} for value, count in session.execute(stmt)]


def date_facets(
    session: Session,
    flt: ArticleFilter,
    unit: Unit,
    index: IndexView | None = None,
    by_meaning: ByMeaning | None = None,
) -> list[FacetValue]:
    """Matches per calendar bucket of `unit` (UTC) under the same filters, in time order,
    then the undated ones (value null), if any. Bucket values are `2016`, `2016-03` or
    `2016-03-27`: each is also a valid published_from/published_to."""
    query = flt.search
    if query is not None and query.matches_nothing:
        return []
    compiled = _compiled(flt, index, by_meaning)
    if compiled is not None and index is not None:
        searcher = index.searcher
        dated = matching.date_counts(searcher, compiled, unit)
        undated = matching.count(searcher, compiled) - sum(n for _, n in dated)
    else:
        dated, undated = _date_buckets(session, flt, unit)
    found: list[FacetValue] = [{"value": label, "count": n} for label, n in dated]
    if undated:
        found.append({"value": None, "count": undated})
    return found


# The characters of the stored text (SQLite: `2016-03-27 09:14:00.000000`) that name a
# bucket, and the same as PostgreSQL's to_char pattern.
_SQLITE_CHARS = {Unit.YEAR: 4, Unit.MONTH: 7, Unit.DAY: 10}
_PG_PATTERNS = {Unit.YEAR: "YYYY", Unit.MONTH: "YYYY-MM", Unit.DAY: "YYYY-MM-DD"}


def _date_buckets(
    session: Session, flt: ArticleFilter, unit: Unit
) -> tuple[list[tuple[str, int]], int]:
    """(label, count) per bucket in time order, and the undated count, by GROUP BY."""
    published_at = models.article_table.c.published_at
    if session.get_bind().dialect.name == "sqlite":
        bucket = func.substr(published_at, 1, _SQLITE_CHARS[unit], type_=Text)
    else:
        utc = func.timezone("UTC", published_at)
        bucket = func.to_char(utc, _PG_PATTERNS[unit], type_=Text)
    n = func.count().label("n")
    stmt = (
        select(bucket.label("bucket"), n)
        .where(*filter_clauses(flt))
        .group_by(bucket)
        .limit(MAX_DATE_BUCKETS + 2)  # every bucket, the undated one, and one too many
    )
    rows = session.execute(stmt).all()
    dated = sorted((label, count) for label, count in rows if label is not None)
    if len(dated) > MAX_DATE_BUCKETS:
        raise matching.too_many_buckets(unit)
    return dated, sum(count for label, count in rows if label is None)


def facets(
    session: Session,
    flt: ArticleFilter,
    asked: list[Facet],
    cache: RevisionCache,
    index: IndexView | None = None,
    meaning: Meaning | None = None,
) -> dict[str, list[FacetValue]]:
    """Each asked facet, by name; without a search, each is cached per data revision. For
    a search by meaning, over the hits its ranking holds."""
    by_meaning = None if meaning is None else ByMeaning(meaning, cache)
    found: dict[str, list[FacetValue]] = {}
    for facet in asked:
        found[facet.value] = _facet(session, flt, facet, cache, index, by_meaning)
    return found


def _facet(
    session: Session,
    flt: ArticleFilter,
    facet: Facet,
    cache: RevisionCache,
    index: IndexView | None,
    by_meaning: ByMeaning | None = None,
) -> list[FacetValue]:
    unit = facet.unit

    def compute() -> list[FacetValue]:
        if unit is None:
            return [dict(f) for f in source_facets(session, flt, index, by_meaning)]
        return date_facets(session, flt, unit, index, by_meaning)

    if flt.search is not None or index is not None:  # the index counts (see `total`)
        return compute()
    dialect = session.get_bind().dialect.name
    revision = newest_revision(session)
    key = _cache_key(f"facet:{facet.value}", dialect, flt)
    values: list[FacetValue] = cache.get_or_compute(key, revision, compute)
    return values
