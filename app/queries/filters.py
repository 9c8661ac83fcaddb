"""What a list of articles is narrowed to: sources, id range, ids, dates, bylines, a url
and a search.

Shared by pages, counts, facets and the export engine, so all of them agree on which rows
a filter means. Takes no Session; knows nothing of HTTP.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import BindParameter, ColumnElement, bindparam
from sqlmodel import col

from app import models
from app.queries import search
from app.queries.search import SearchMode, SearchQuery
from app.queries.search_options import ALL_FIELDS, SearchField, Typos


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    source_ids: tuple[int, ...] = ()
    id_min: int | None = None
    id_max: int | None = None
    ids: tuple[int, ...] = ()
    q: str | None = None  # search text; blank means no search
    # Published in [published_from, published_before): undated articles never match.
    published_from: datetime | None = None
    published_before: datetime | None = None
    authors: tuple[str, ...] = ()  # any of these bylines, exactly
    url: str | None = None
    mode: SearchMode = SearchMode.KEYWORD  # how `q` finds articles (no `q`: no effect)
    typos: Typos = Typos.OFF  # whether the search's words forgive typos
    search_in: frozenset[SearchField] = ALL_FIELDS  # the fields the search matches in

    @property
    def search(self) -> SearchQuery | None:
        return search.parse(self.q)

    def fingerprint_parts(self) -> tuple[object, ...]:
        query = self.search
        parts: tuple[object, ...] = (
            sorted(set(self.source_ids)),
            self.id_min,
            self.id_max,
            sorted(set(self.ids)),
            None if query is None else query.canonical(),
        )
        if self.news_narrowed:  # only then: cursors made before these filters stay valid
            dates = (self.published_from, self.published_before)
            parts += (*(None if d is None else d.isoformat() for d in dates), self.url)
            parts += (sorted(set(self.authors)),)
        if self.mode is not SearchMode.KEYWORD:  # only then: keyword cursors stay valid
            parts += (self.mode.value,)
        # Only when set: cursors made before these options stay valid.
        if self.typos is not Typos.OFF:
            parts += (f"typos={self.typos.value}",)
        if self.search_in != ALL_FIELDS:
            parts += (f"search_in={','.join(sorted(self.search_in))}",)
        return parts

    @property
    def news_narrowed(self) -> bool:
        """True when a date, byline or url narrows the rows."""
        return (
            self.published_from is not None
            or self.published_before is not None
            or bool(self.authors)
            or self.url is not None
        )

    @property
    def narrowed(self) -> bool:
        """True when anything beyond the search narrows the rows."""
        return (
            bool(self.source_ids or self.ids)
            or self.id_min is not None
            or (self.id_max is not None)
            or self.news_narrowed
        )


Bindable = int | str | datetime


def filter_binds(flt: ArticleFilter) -> dict[str, Bindable]:
    """The values every filter but the search binds, by bind name.

    The names alone decide the SQL (`filter_clauses_for`), so a statement compiled once for
    one set of names serves every filter with the same names (app/queries/prepared.py).
    """
    binds: dict[str, Bindable] = {
        f"src_{i}": value for i, value in enumerate(sorted(set(flt.source_ids)))
    }
    if flt.id_min is not None:
        binds["id_min"] = flt.id_min
    if flt.id_max is not None:
        binds["id_max"] = flt.id_max
    binds.update({f"ids_{i}": value for i, value in enumerate(sorted(set(flt.ids)))})
    if flt.published_from is not None:
        binds["pub_from"] = flt.published_from
    if flt.published_before is not None:
        binds["pub_before"] = flt.published_before
    binds.update({f"author_{i}": value for i, value in enumerate(sorted(set(flt.authors)))})
    if flt.url is not None:
        binds["url"] = flt.url
    return binds


def filter_clauses_for(
    binds: Mapping[str, Bindable | None], *, with_values: bool = True
) -> list[ColumnElement[bool]]:
    """WHERE clauses binding `binds` by name (their values too, unless `with_values` is off)."""
    article_id = col(models.Article.article_id)
    source_id = col(models.Article.source_id)
    published_at = col(models.Article.published_at)
    author = col(models.Article.author)

    def bound(name: str) -> BindParameter[object]:
        # Untyped: each takes the type of the column it is compared with (BIGINT, a date).
        return bindparam(name, binds[name]) if with_values else bindparam(name)

    def named(prefix: str) -> list[BindParameter[object]]:
        return [bound(name) for name in binds if name.startswith(prefix)]

    sources, ids, authors = named("src_"), named("ids_"), named("author_")
    clauses: list[ColumnElement[bool]] = []
    if sources:
        clauses.append(source_id == sources[0] if len(sources) == 1 else source_id.in_(sources))
    if "id_min" in binds:
        clauses.append(article_id >= bound("id_min"))
    if "id_max" in binds:
        clauses.append(article_id <= bound("id_max"))
    if ids:
        clauses.append(article_id.in_(ids))
    if "pub_from" in binds:
        clauses.append(published_at >= bound("pub_from"))
    if "pub_before" in binds:
        clauses.append(published_at < bound("pub_before"))
    if authors:
        clauses.append(author == authors[0] if len(authors) == 1 else author.in_(authors))
    if "url" in binds:
        clauses.append(col(models.Article.url) == bound("url"))
    return clauses


def filter_clauses(flt: ArticleFilter) -> list[ColumnElement[bool]]:
    """WHERE clauses for every filter except the search (which the search index answers)."""
    return filter_clauses_for(filter_binds(flt))


def with_sources(flt: ArticleFilter, source_ids: Sequence[int]) -> ArticleFilter:
    """`flt` narrowed to `source_ids` (none: unchanged)."""
    if not source_ids:
        return flt
    return replace(flt, source_ids=tuple(source_ids))
