"""Reads of the article table: one article, and keyset pages of summaries.

Takes a Session, returns rows; knows nothing of HTTP. Pages never use OFFSET: each walks an
index from the last key seen, fetching one row more than asked to learn if another page exists.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select
from sqlmodel import Session, col

from app import models
from app.errors import NotFound
from app.queries.cursor import Cursor, KeyValue

EXCERPT_CHARS = 240  # a couple of lines of a result list


class Sort(StrEnum):
    NEWEST = "-article_id"
    OLDEST = "article_id"
    TITLE = "title"
    TITLE_DESC = "-title"


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    source_ids: tuple[int, ...] = ()
    id_min: int | None = None
    id_max: int | None = None
    ids: tuple[int, ...] = ()

    def fingerprint_parts(self) -> tuple[object, ...]:
        return (sorted(set(self.source_ids)), self.id_min, self.id_max, sorted(set(self.ids)))


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Row[int, int, str, str]]
    has_next: bool
    has_prev: bool
    keys: list[tuple[KeyValue, ...]] = field(default_factory=list)


def get_article(session: Session, article_id: int) -> models.Article:
    article = session.get(models.Article, article_id)
    if article is None:
        raise NotFound(f"No article with article_id {article_id}.")
    return article


def _sort_columns(sort: Sort) -> tuple[list[ColumnElement[Any]], bool]:
    """The key columns for `sort`, and whether the walk is descending."""
    article_id: ColumnElement[Any] = models.article_table.c.article_id
    if sort in (Sort.NEWEST, Sort.OLDEST):
        return [article_id], sort is Sort.NEWEST
    title: ColumnElement[Any] = models.article_table.c.title
    return [title, article_id], sort is Sort.TITLE_DESC


def _filters(flt: ArticleFilter) -> list[ColumnElement[bool]]:
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


def _after(
    columns: list[ColumnElement[Any]], key: tuple[KeyValue, ...], descending: bool
) -> ColumnElement[bool]:
    """Rows strictly past `key` in the walk's direction."""
    if len(columns) == 1:
        return columns[0] < key[0] if descending else columns[0] > key[0]
    # Spelled out as OR/AND rather than a row value: both backends seek the index with it.
    first, second = columns
    if descending:
        return or_(first < key[0], and_(first == key[0], second < key[1]))
    return or_(first > key[0], and_(first == key[0], second > key[1]))


def summary_select() -> Select[int, int, str, str]:
    return select(
        col(models.Article.article_id),
        col(models.Article.source_id),
        col(models.Article.title),
        func.substr(col(models.Article.content), 1, EXCERPT_CHARS + 1).label("excerpt"),
    )


def list_articles(
    session: Session,
    flt: ArticleFilter,
    *,
    sort: Sort = Sort.NEWEST,
    limit: int = 20,
    cursor: Cursor | None = None,
) -> Page:
    """One keyset page of article summaries in `sort` order."""
    columns, descending = _sort_columns(sort)
    backward = cursor is not None and cursor.direction == "before"
    walk_descending = descending != backward
    stmt = summary_select().where(*_filters(flt))
    if cursor is not None:
        stmt = stmt.where(_after(columns, cursor.key, walk_descending))
    stmt = stmt.order_by(*(c.desc() if walk_descending else c.asc() for c in columns))
    rows = list(session.execute(stmt.limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    keys = [_key_of(row, sort) for row in rows]
    if backward:
        return Page(rows, has_next=True, has_prev=more, keys=keys)
    return Page(rows, has_next=more, has_prev=cursor is not None, keys=keys)


def _key_of(row: Row[int, int, str, str], sort: Sort) -> tuple[KeyValue, ...]:
    if sort in (Sort.NEWEST, Sort.OLDEST):
        return (row.article_id,)
    return (row.title, row.article_id)


def key_arity(sort: Sort) -> int:
    return 1 if sort in (Sort.NEWEST, Sort.OLDEST) else 2


def excerpt(head: str) -> str:
    """Cut the first EXCERPT_CHARS+1 characters of a body to a word boundary, marking a cut."""
    if len(head) <= EXCERPT_CHARS:
        return head
    cut = head[:EXCERPT_CHARS]
    space = cut.rfind(" ")
    if space > EXCERPT_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"
