"""Keyset pages walked along the database's own indexes: the lists without a search.

A walk reads `limit + 1` rows past the cursor's key in index order: article_id, (title,
article_id), or, by date, two segments, the dated articles along (published_at,
article_id) and then the undated along article_id, so undated articles come last in either
direction and each segment is a plain index range. The statements are compiled once per
shape and run on the DBAPI cursor (app/queries/prepared.py). Knows nothing of HTTP.
"""

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Dialect,
    Integer,
    Select,
    and_,
    bindparam,
    or_,
    select,
)
from sqlmodel import Session

from app import models
from app.dates import from_micros, segments
from app.queries.cursor import KeyValue
from app.queries.filters import filter_binds, filter_clauses_for
from app.queries.pages import (
    BY_DATE,
    DESCENDING,
    Content,
    Item,
    Page,
    PageQuery,
    Sort,
    item_of,
    keys_of,
    paged,
    summary_select,
    walk,
)
from app.queries.prepared import Prepared

# Which index a walk follows: ids, titles, the dated articles by date, the undated by id.
Order = Literal["id", "title", "dated", "undated"]
KEY_NAMES = ("key_0", "key_1")  # a cursor's key values, bound by these names
LIMIT_NAME = "row_limit"


def order_of(sort: Sort) -> Order:
    return "id" if sort in (Sort.NEWEST, Sort.OLDEST) else "title"


def after(
    columns: list[ColumnElement[Any]],
    key: tuple[KeyValue | BindParameter[Any], ...],
    descending: bool,
) -> ColumnElement[bool]:
    """Rows strictly past `key` in the walk's direction."""
    if len(columns) == 1:
        return columns[0] < key[0] if descending else columns[0] > key[0]
    # OR/AND rather than a row value (SQLite seeks no row value), with the first column's
    # bound alone beside it, which both planners seek the index with.
    first, second = columns
    if descending:
        return and_(first <= key[0], or_(first < key[0], and_(first == key[0], second < key[1])))
    return and_(first >= key[0], or_(first > key[0], and_(first == key[0], second > key[1])))


def walk_select(
    order: Order,
    content: Content,
    walk_descending: bool,
    after_key: bool,
    where: list[ColumnElement[bool]],
    *,
    head: bool = False,
    deferred: bool = False,
) -> Select[Any]:
    """An index walk: `where`, past the bound cursor key if `after_key`, `row_limit` rows;
    `deferred`, the ids of the page first, then their rows."""
    article = models.article_table
    keyed: dict[Order, list[ColumnElement[Any]]] = {
        "id": [article.c.article_id],
        "title": [article.c.title, article.c.article_id],
        "dated": [article.c.published_at, article.c.article_id],
        "undated": [article.c.article_id],
    }
    columns = keyed[order]
    conditions = list(where)
    if order == "dated":
        conditions.append(article.c.published_at.is_not(None))
    elif order == "undated":
        conditions.append(article.c.published_at.is_(None))
    if after_key:
        names = KEY_NAMES[: len(columns)]
        key: tuple[BindParameter[Any], ...] = tuple(bindparam(name) for name in names)
        conditions.append(after(columns, key, walk_descending))
    ordering = [c.desc() if walk_descending else c.asc() for c in columns]
    limit = bindparam(LIMIT_NAME, type_=Integer)
    if not deferred:
        return (
            summary_select(content, head=head).where(*conditions).order_by(*ordering).limit(limit)
        )
    # The page's ids first, from the indexes alone, then just those rows: a filter the walk's
    # own index cannot answer would otherwise read a row for every candidate it rejects.
    ids = select(article.c.article_id).where(*conditions).order_by(*ordering).limit(limit)
    return (
        summary_select(content, head=head)
        .where(article.c.article_id.in_(ids.scalar_subquery()))
        .order_by(*ordering)
    )


# Filters (by bind name) that no walk's index holds beside its order: their walks take the
# page's ids from a covering index first (`walk_select`'s `deferred`).
_OFF_INDEX = ("pub_from", "pub_before", "url", "author_")


def deferred_walk(bind_names: Iterable[str]) -> bool:
    return any(name.startswith(_OFF_INDEX) for name in bind_names)


@lru_cache(maxsize=512)
def _prepared(
    dialect: Dialect,
    order: Order,
    content: Content,
    walk_descending: bool,
    bind_names: tuple[str, ...],
) -> Prepared:
    """One compiled statement per shape: the bind names decide the filters' SQL."""
    names = dict.fromkeys(name for name in bind_names if name not in KEY_NAMES)
    where = filter_clauses_for(names, with_values=False)
    after_key = KEY_NAMES[0] in bind_names
    stmt = walk_select(
        order, content, walk_descending, after_key, where, deferred=deferred_walk(names)
    )
    return Prepared.of(stmt, dialect)


def _rows(
    session: Session,
    order: Order,
    content: Content,
    walk_descending: bool,
    binds: dict[str, Any],
    count: int,
) -> list[Item]:
    prepared = _prepared(session.get_bind().dialect, order, content, walk_descending, tuple(binds))
    found = prepared.rows(session, {**binds, LIMIT_NAME: count})
    if content is not Content.EXCERPT:
        return [item_of(row, content, keep_head=False) for row in found]
    # Most pages: item_of's result, built inline, without a call and its branches per row.
    return [
        {
            "article_id": row[0],
            "source_id": row[1],
            "title": row[2],
            "word_count": row[3],
            "published_at": row[4],
            "url": row[5],
            "author": row[6],
            "excerpt": row[7],
        }
        for row in found
    ]


def index_page(session: Session, ask: PageQuery) -> Page:
    """A page walked along an index with no search."""
    if ask.sort in BY_DATE:
        return _dated_page(session, ask)
    _, walk_descending = walk(ask.cursor, ask.sort in DESCENDING)
    binds: dict[str, Any] = filter_binds(ask.flt)
    if ask.cursor is not None:
        binds.update(zip(KEY_NAMES, ask.cursor.key, strict=False))
    rows = _rows(session, order_of(ask.sort), ask.content, walk_descending, binds, ask.limit + 1)
    return paged(rows, keys_of(ask.sort, rows), ask.limit, ask.cursor)


def _dated_page(session: Session, ask: PageQuery) -> Page:
    """A page by date: the dated segment, then the undated one (walking back, the reverse),
    from the segment the cursor's key is in. A second read only where the two meet."""
    backward, walk_descending = walk(ask.cursor, ask.sort in DESCENDING)
    binds: dict[str, Any] = filter_binds(ask.flt)
    key = ask.cursor.key if ask.cursor is not None else None
    from_undated = None if key is None else key[0] is None
    rows: list[Item] = []
    for n, segment in enumerate(segments(backward=backward, from_undated=from_undated)):
        segment_binds = dict(binds)
        if n == 0 and key is not None:
            micros, article_id = key
            if segment == "dated":
                assert isinstance(micros, int)
                segment_binds |= {KEY_NAMES[0]: from_micros(micros), KEY_NAMES[1]: article_id}
            else:
                segment_binds[KEY_NAMES[0]] = article_id
        wanted = ask.limit + 1 - len(rows)
        rows += _rows(session, segment, ask.content, walk_descending, segment_binds, wanted)
        if len(rows) > ask.limit:
            break
    return paged(rows, keys_of(ask.sort, rows), ask.limit, ask.cursor)
