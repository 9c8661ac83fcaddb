"""Whole relevance rankings of a search, computed once per data revision and kept.

Ranking is the costly part of a search (BM25 or ts_rank_cd over every match); keeping the
ordered (score, article_id) list lets every page of that search, and its exact total, be
read from memory until an ingest changes a row. Knows nothing of HTTP.
"""

from array import array
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from app.queries import search
from app.queries.cache import RevisionCache
from app.queries.filters import ArticleFilter, filter_clauses
from app.queries.prepared import Prepared

# A search with more hits than this is ranked again for each page instead of being kept.
MAX_CACHED_HITS = 250_000


@dataclass(frozen=True, slots=True)
class Ranking:
    """Every match of a search, most relevant first: (score desc, article_id desc)."""

    scores: "array[float]"  # quoted: array is not subscriptable at runtime before 3.12
    ids: "array[int]"

    def __len__(self) -> int:
        return len(self.ids)

    def sort_key(self, i: int) -> tuple[float, int]:
        return (-self.scores[i], -self.ids[i])


_TOO_MANY = "too-many"  # cached in place of a ranking too large to keep


def _ranking_key(session: Session, flt: ArticleFilter) -> str:
    parts = ["ranking", session.get_bind().dialect.name, *flt.fingerprint_parts()]
    return repr(parts)


def cached_ranking(
    session: Session, flt: ArticleFilter, cache: RevisionCache, revision: int
) -> Ranking | None:
    """The ranking of `flt`'s search if one is kept for `revision`; never computes."""
    hit = cache.get(_ranking_key(session, flt), revision)
    return hit if isinstance(hit, Ranking) else None


def ranking(
    session: Session, flt: ArticleFilter, cache: RevisionCache, revision: int
) -> Ranking | None:
    """Rank every match once per revision (None: too many hits to keep; page by SQL)."""
    key = _ranking_key(session, flt)
    hit = cache.get(key, revision)
    if hit is not None:
        return hit if isinstance(hit, Ranking) else None
    query = flt.search
    if query is None or not query.ranked:
        return None
    dialect = session.get_bind().dialect.name
    hits = search.ranked_hits(dialect, query, filter_clauses(flt)).subquery("hits")
    stmt = (
        select(hits.c.article_id, hits.c.score)
        .order_by(hits.c.score.desc(), hits.c.article_id.desc())
        .limit(MAX_CACHED_HITS + 1)
    )
    # Tens of thousands of rows: plain tuples, not Row objects (a third of a cold search).
    prepared = Prepared.of(stmt, session.get_bind().dialect, driver_values=True)
    rows = prepared.rows(session, {})
    if len(rows) > MAX_CACHED_HITS:
        cache.put(key, revision, _TOO_MANY)
        return None
    result = Ranking(array("d", (r[1] for r in rows)), array("q", (r[0] for r in rows)))
    cache.put(key, revision, result, weight=max(1, len(result)))
    return result
