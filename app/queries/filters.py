"""A filter (app/search/filters.py) as SQL: its binds by name, and the WHERE clauses they
make. Shared by pages, counts, facets and the export engine, so all of them agree on which
rows a filter means. Takes no Session; knows nothing of HTTP.
"""

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import BindParameter, ColumnElement, bindparam
from sqlmodel import col

from app import models
from app.search.filters import ArticleFilter

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
