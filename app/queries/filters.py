"""What a list of articles is narrowed to: sources, id range, ids and a search.

Shared by pages, counts, facets and the export engine, so all of them agree on which rows
a filter means. Takes no Session; knows nothing of HTTP.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import ColumnElement
from sqlmodel import col

from app import models
from app.queries import search
from app.queries.search import SearchQuery


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    source_ids: tuple[int, ...] = ()
    id_min: int | None = None
    id_max: int | None = None
    ids: tuple[int, ...] = ()
    q: str | None = None  # search text; blank means no search

    @property
    def search(self) -> SearchQuery | None:
        return search.parse(self.q)

    def fingerprint_parts(self) -> tuple[object, ...]:
        query = self.search
        return (
            sorted(set(self.source_ids)),
            self.id_min,
            self.id_max,
            sorted(set(self.ids)),
            None if query is None else query.canonical(),
        )

    @property
    def narrowed(self) -> bool:
        """True when anything beyond the search narrows the rows."""
        return (
            bool(self.source_ids or self.ids)
            or self.id_min is not None
            or (self.id_max is not None)
        )


def filter_clauses(flt: ArticleFilter) -> list[ColumnElement[bool]]:
    """WHERE clauses for every filter except the search (which needs the backend)."""
    article_id = col(models.Article.article_id)
    clauses: list[ColumnElement[bool]] = []
    if flt.source_ids:
        source_ids = sorted(set(flt.source_ids))
        source_id = col(models.Article.source_id)
        clauses.append(
            source_id == source_ids[0] if len(source_ids) == 1 else source_id.in_(source_ids)
        )
    if flt.id_min is not None:
        clauses.append(article_id >= flt.id_min)
    if flt.id_max is not None:
        clauses.append(article_id <= flt.id_max)
    if flt.ids:
        clauses.append(article_id.in_(sorted(set(flt.ids))))
    return clauses


def where_clauses(dialect: str, flt: ArticleFilter) -> list[ColumnElement[bool]]:
    """Every filter, the search included: what counts, facets and pages all share."""
    clauses = filter_clauses(flt)
    query = flt.search
    if query is not None:
        clauses.append(search.condition(dialect, query))
    return clauses


def with_sources(flt: ArticleFilter, source_ids: Sequence[int]) -> ArticleFilter:
    """`flt` narrowed to `source_ids` (none: unchanged)."""
    if not source_ids:
        return flt
    return replace(flt, source_ids=tuple(source_ids))
