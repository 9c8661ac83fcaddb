"""What a page of articles is made of: its sorts, its items and how keyset pages end.

Shared by the index walks (walks.py) and the searches (articles.py), so every page builds
its items, keys and neighbours alike. Takes a Session only to fetch items by id; knows
nothing of HTTP.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import BigInteger, ColumnElement, Dialect, Select, bindparam, func, select
from sqlalchemy import literal_column as column_named
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from app import models
from app.dates import to_micros
from app.errors import InvalidCursor
from app.queries.bodies import start_column
from app.queries.cursor import Cursor, KeyValue
from app.queries.prepared import Prepared
from app.search.filters import ArticleFilter

Item = dict[str, Any]


class Sort(StrEnum):
    NEWEST = "-article_id"
    OLDEST = "article_id"
    TITLE = "title"
    TITLE_DESC = "-title"
    PUBLISHED = "published_at"
    PUBLISHED_DESC = "-published_at"
    RELEVANCE = "relevance"


# Sorts walked from the high end (their ties too go by article_id, descending).
DESCENDING = frozenset({Sort.NEWEST, Sort.TITLE_DESC, Sort.PUBLISHED_DESC})
# Sorts by publication date: undated articles come last, whichever the direction.
BY_DATE = frozenset({Sort.PUBLISHED, Sort.PUBLISHED_DESC})


class Content(StrEnum):
    """How much of the body a list item carries."""

    NONE = "none"
    EXCERPT = "excerpt"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What one page asks for: the filter (and search), the order, how many items, the
    cursor it starts from, and how much body each item carries."""

    flt: ArticleFilter
    sort: Sort
    limit: int
    cursor: Cursor | None
    content: Content


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Item]
    has_next: bool
    has_prev: bool
    keys: list[tuple[KeyValue, ...]] = field(default_factory=list)


def key_arity(sort: Sort) -> int:
    return 1 if sort in (Sort.NEWEST, Sort.OLDEST) else 2


# The microseconds of datetime's own range (years 1 to 9999): a date key outside is forged.
_MICROS_RANGE = (
    to_micros(datetime.min.replace(tzinfo=UTC)),
    to_micros(datetime.max.replace(tzinfo=UTC)),
)


def check_key(sort: Sort, key: tuple[KeyValue, ...]) -> None:
    """Refuse a cursor key no page of `sort` could have made, even if correctly signed
    (the default secret is public): an id past 64 bits would overflow the driver."""
    *first, article_id = key
    ok = type(article_id) is int and 0 <= article_id <= models.MAX_ID
    if first and sort is Sort.RELEVANCE:
        score = first[0]
        ok = ok and type(score) in (int, float) and math.isfinite(float(score or 0))
    elif first and sort in BY_DATE:  # microseconds, or None for an undated article
        micros = first[0]
        low, high = _MICROS_RANGE
        ok = ok and (micros is None or (type(micros) is int and low <= micros <= high))
    elif first:
        ok = ok and isinstance(first[0], str)
    if not ok:
        raise InvalidCursor("The cursor does not fit this list.")


def keys_of(sort: Sort, rows: Sequence[Item]) -> list[tuple[KeyValue, ...]]:
    """Each row's key in `sort` (not relevance, whose keys are the ranking's)."""
    if key_arity(sort) == 1:
        return [(r["article_id"],) for r in rows]
    if sort in BY_DATE:
        return [(date_key(r["published_at"]), r["article_id"]) for r in rows]
    return [(r["title"], r["article_id"]) for r in rows]


def date_key(published_at: datetime | None) -> int | None:
    return None if published_at is None else to_micros(published_at)


# A list item's columns, by position, before its excerpt and content.
SUMMARY_COLUMNS = (
    "article_id",
    "source_id",
    "title",
    "word_count",
    "published_at",
    "url",
    "author",
)
HEAD = len(SUMMARY_COLUMNS)  # where the excerpt is, when there is one


def summary_select(content: Content = Content.EXCERPT, *, head: bool = False) -> Select[Any]:
    """The columns of a list item: the stored excerpt when `content` asks for it or `head`
    does (a search's snippet falls back to it), then the body when `content` is full."""
    article = models.article_table
    columns: list[ColumnElement[Any]] = [article.c[name] for name in SUMMARY_COLUMNS]
    if content is Content.EXCERPT or head:
        columns.append(article.c.excerpt)
    if content is Content.FULL:
        columns.append(article.c.content)
    return select(*columns)


def among(dialect: str, name: str) -> ColumnElement[bool]:
    """article_id in the ids bound to `name` as one parameter (see `among_value`), so the
    statement is compiled once however many ids a page holds."""
    article_id = models.article_table.c.article_id
    if dialect == "sqlite":
        members: Select[Any] = select(column_named("value")).select_from(
            func.json_each(bindparam(name))
        )
        return article_id.in_(members)
    return article_id == func.any(bindparam(name, type_=ARRAY(BigInteger())))


def among_value(dialect: str, ids: Sequence[int]) -> object:
    """The value `among`'s parameter takes: a JSON array on SQLite, an array elsewhere."""
    return orjson.dumps(list(ids)).decode() if dialect == "sqlite" else list(ids)


@lru_cache(maxsize=32)
def _by_ids(dialect: Dialect, content: Content, body_chars: int) -> Prepared:
    """Built once per shape: statement building costs more than the lookup itself."""
    stmt = summary_select(content, head=True)
    if body_chars:
        stmt = stmt.add_columns(start_column(body_chars))
    return Prepared.of(stmt.where(among(dialect.name, "ids")), dialect)


def fetch_items(
    session: Session, ids: list[int], content: Content, *, body_chars: int = 0
) -> dict[int, Item]:
    """The list items for `ids`, by id (a missing id is simply absent). With `body_chars`,
    on PostgreSQL each item also carries `_body`: its title and the start of its body (the
    snippet's text), read by the same statement, so a search page is one round trip;
    SQLite reads those through the blob API instead (app/queries/bodies.py)."""
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        body_chars = 0
    rows = _by_ids(dialect, content, body_chars).rows(
        session, {"ids": among_value(dialect.name, ids)}
    )
    if not body_chars:
        return {row[0]: item_of(row, content) for row in rows}
    found = {}
    for row in rows:
        item = found[row[0]] = item_of(row[:-1], content)
        item["_body"] = (row[2], row[-1])
    return found


def in_order(by_id: dict[int, Item], ids: Sequence[int]) -> list[Item]:
    """The items of `ids` in that order, skipping those gone from the database since the
    index saw them."""
    return [by_id[i] for i in ids if i in by_id]


def item_of(row: Sequence[Any], content: Content, *, keep_head: bool = True) -> Item:
    """A list item from a row of summary_select (by position: plain tuples come here too).
    `keep_head` keeps the excerpt for a search's snippet fallback."""
    item: Item = {
        "article_id": row[0],
        "source_id": row[1],
        "title": row[2],
        "word_count": row[3],
        "published_at": row[4],
        "url": row[5],
        "author": row[6],
    }
    if content is Content.FULL:
        item["content"] = row[-1]
    if len(row) > HEAD + (content is Content.FULL):
        if keep_head:
            item["_head"] = row[HEAD]  # dropped before the reply
        if content is Content.EXCERPT:
            item["excerpt"] = row[HEAD]
    return item


def walk(cursor: Cursor | None, descending: bool) -> tuple[bool, bool]:
    """(backward, walk_descending) for a page reached by `cursor`."""
    backward = cursor is not None and cursor.direction == "before"
    return backward, descending != backward


def paged(
    rows: list[Item], keys: list[tuple[KeyValue, ...]], limit: int, cursor: Cursor | None
) -> Page:
    """A page of the first `limit` rows (one more says there is a next), in reading order."""
    more = len(rows) > limit
    rows, keys = rows[:limit], keys[:limit]
    if cursor is not None and cursor.direction == "before":
        rows.reverse()
        keys.reverse()
        return Page(rows, has_next=True, has_prev=more, keys=keys)
    return Page(rows, has_next=more, has_prev=cursor is not None, keys=keys)
