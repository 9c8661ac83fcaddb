"""Reads of the article table: one article, and keyset pages of summaries, searched or not.

Takes a Session (and, to search, the search index), returns rows; knows nothing of HTTP.
Pages never use OFFSET: each walks an index (or, for relevance, the ranked matches) from the
last key seen, fetching one row more than asked to learn if another page exists. Searches
ask the search index for a page of ids first, then the database for the columns of just
those rows, and cut each snippet from the database's copy of the text.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

import orjson
import tantivy
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Dialect,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from app import models
from app.errors import Gone, InvalidCursor, NotFound, ServiceUnavailable
from app.queries import bodies, takedowns
from app.queries.cache import RevisionCache
from app.queries.cursor import Cursor, KeyValue
from app.queries.filters import (
    ArticleFilter,
    filter_binds,
    filter_clauses,
    filter_clauses_for,
    with_sources,
)
from app.queries.prepared import Prepared
from app.queries.ranking import Ranking, ranking_to
from app.search import matching
from app.search.index import SearchIndex

__all__ = [  # the filter names are re-exported: the export engine imports them from here
    "DETAIL_COLUMNS",
    "ArticleFilter",
    "Content",
    "Item",
    "Page",
    "Sort",
    "check_key",
    "filter_clauses",
    "get_article_fields",
    "key_arity",
    "list_articles",
    "resolve_sort",
    "summary_select",
    "with_sources",
]

Item = dict[str, Any]


class Sort(StrEnum):
    NEWEST = "-article_id"
    OLDEST = "article_id"
    TITLE = "title"
    TITLE_DESC = "-title"
    RELEVANCE = "relevance"


class Content(StrEnum):
    """How much of the body a list item carries."""

    NONE = "none"
    EXCERPT = "excerpt"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Item]
    has_next: bool
    has_prev: bool
    keys: list[tuple[KeyValue, ...]] = field(default_factory=list)


# What the detail endpoint shows of an article (the change feed adds its revision).
DETAIL_COLUMNS = (
    "article_id",
    "source_id",
    "title",
    "content",
    "word_count",
    "extra",
    "ingested_at",
    "updated_at",
)


_DETAIL = select(*(models.article_table.c[name] for name in DETAIL_COLUMNS)).where(
    models.article_table.c.article_id == bindparam("article_id")
)


@lru_cache(maxsize=8)  # one entry per engine's dialect: one in production
def _prepared_detail(dialect: Dialect) -> Prepared:
    return Prepared.of(_DETAIL, dialect)


def get_article_fields(session: Session, article_id: int) -> dict[str, Any]:
    """One article's public fields as a dict: one statement, compiled once."""
    rows = _prepared_detail(session.get_bind().dialect).rows(session, {"article_id": article_id})
    if not rows:
        raise _missing(session, article_id)
    return dict(zip(DETAIL_COLUMNS, rows[0], strict=True))


def _missing(session: Session, article_id: int) -> Gone | NotFound:
    """Why `article_id` has no row: taken down, or never there."""
    gone = takedowns.deleted_at(session, article_id)
    if gone is not None:
        return Gone(f"Article {article_id} was taken down.", deleted_at=gone)
    return NotFound(f"No article with article_id {article_id}.")


def resolve_sort(sort: Sort | None, flt: ArticleFilter) -> Sort:
    """Relevance is the default with a search; without positive terms there is no rank."""
    query = flt.search
    ranked = query is not None and query.ranked
    if sort is None:
        return Sort.RELEVANCE if ranked else Sort.NEWEST
    return sort if sort is not Sort.RELEVANCE or ranked else Sort.NEWEST


def key_arity(sort: Sort) -> int:
    return 1 if sort in (Sort.NEWEST, Sort.OLDEST) else 2


def check_key(sort: Sort, key: tuple[KeyValue, ...]) -> None:
    """Refuse a cursor key no page of `sort` could have made, even if correctly signed
    (the default secret is public): an id past 64 bits would overflow the driver."""
    *first, article_id = key
    ok = type(article_id) is int and 0 <= article_id <= models.MAX_ID
    if first and sort is Sort.RELEVANCE:
        score = first[0]
        ok = ok and type(score) in (int, float) and math.isfinite(float(score or 0))
    elif first:
        ok = ok and isinstance(first[0], str)
    if not ok:
        raise InvalidCursor("The cursor does not fit this list.")


def _after(
    columns: list[ColumnElement[Any]],
    key: tuple[KeyValue | BindParameter[Any], ...],
    descending: bool,
) -> ColumnElement[bool]:
    """Rows strictly past `key` in the walk's direction."""
    if len(columns) == 1:
        return columns[0] < key[0] if descending else columns[0] > key[0]
    # Spelled out as OR/AND rather than a row value: both backends seek the index with it.
    first, second = columns
    if descending:
        return or_(first < key[0], and_(first == key[0], second < key[1]))
    return or_(first > key[0], and_(first == key[0], second > key[1]))


def summary_select(content: Content = Content.EXCERPT, *, head: bool = False) -> Select[Any]:
    """The columns of a list item: the stored excerpt when `content` asks for it or `head`
    does (a search's snippet falls back to it), then the body when `content` is full."""
    article = models.article_table
    columns: list[ColumnElement[Any]] = [
        article.c.article_id,
        article.c.source_id,
        article.c.title,
        article.c.word_count,
    ]
    if content is Content.EXCERPT or head:
        columns.append(article.c.excerpt)
    if content is Content.FULL:
        columns.append(article.c.content)
    return select(*columns)


@cache
def _by_ids(content: Content) -> Select[Any]:
    """Built once per content mode: statement building costs more than the lookup itself."""
    article_id = models.article_table.c.article_id
    return summary_select(content, head=True).where(
        article_id.in_(bindparam("ids", expanding=True))
    )


def _fetch(session: Session, ids: list[int], content: Content) -> dict[int, Item]:
    """The list items for `ids`, by id (a missing id is simply absent)."""
    rows = session.execute(_by_ids(content), {"ids": ids})
    return {row[0]: _item(row, content) for row in rows}


def _item(row: Sequence[Any], content: Content, *, keep_head: bool = True) -> Item:
    """A list item from a row of summary_select (by position: plain tuples come here too).
    `keep_head` keeps the excerpt for a search's snippet fallback."""
    item: Item = {
        "article_id": row[0],
        "source_id": row[1],
        "title": row[2],
        "word_count": row[3],
    }
    if content is Content.FULL:
        item["content"] = row[-1]
    if len(row) > 4 + (content is Content.FULL):
        if keep_head:
            item["_head"] = row[4]  # dropped before the reply
        if content is Content.EXCERPT:
            item["excerpt"] = row[4]
    return item


def _walk(cursor: Cursor | None, descending: bool) -> tuple[bool, bool]:
    """(backward, walk_descending) for a page reached by `cursor`."""
    backward = cursor is not None and cursor.direction == "before"
    return backward, descending != backward


def _paged(
    rows: list[Item], keys: list[tuple[KeyValue, ...]], limit: int, cursor: Cursor | None
) -> Page:
    more = len(rows) > limit
    rows, keys = rows[:limit], keys[:limit]
    if cursor is not None and cursor.direction == "before":
        rows.reverse()
        keys.reverse()
        return Page(rows, has_next=True, has_prev=more, keys=keys)
    return Page(rows, has_next=more, has_prev=cursor is not None, keys=keys)


def list_articles(
    session: Session,
    flt: ArticleFilter,
    *,
    sort: Sort = Sort.NEWEST,
    limit: int = 20,
    cursor: Cursor | None = None,
    content: Content = Content.EXCERPT,
    cache: RevisionCache | None = None,
    index: SearchIndex | None = None,
) -> Page:
    """One keyset page of article summaries in `sort` order (see `resolve_sort`).

    A search needs `index`. Each hit also carries `score` and `snippet` (HTML, matches in
    <mark>). Given a `cache`, the ranking a cursor page needs is kept while the index is
    unchanged.
    """
    if cursor is not None:
        check_key(sort, cursor.key)
    query = flt.search
    if query is None:
        return _index_page(session, flt, sort, limit, cursor, content)
    if query.matches_nothing:
        return Page([], has_next=False, has_prev=False)
    if index is None:
        raise ServiceUnavailable("Search is not available: there is no search index.")
    searcher = index.searcher()
    compiled = matching.compile_search(index, query, flt)
    if sort is Sort.RELEVANCE and query.ranked:
        page = _ranked_page(session, index, searcher, compiled, flt, limit, cursor, content, cache)
    elif key_arity(sort) == 1:
        page = _id_page(session, index, searcher, flt, sort, limit, cursor, content)
    else:
        page = _title_page(session, searcher, compiled, flt, sort, limit, cursor, content)
    _decorate(session, searcher, compiled, page.rows)
    for item in page.rows:
        item.pop("_head", None)
    return page


def _index_page(
    session: Session,
    flt: ArticleFilter,
    sort: Sort,
    limit: int,
    cursor: Cursor | None,
    content: Content,
) -> Page:
    """A page walked along an index with no search: article_id, or (title, article_id).

    The statement is compiled once per shape and run on the DBAPI cursor
    (app/queries/prepared.py).
    """
    _, walk_descending = _walk(cursor, sort in (Sort.NEWEST, Sort.TITLE_DESC))
    binds: dict[str, Any] = filter_binds(flt)
    if cursor is not None:
        binds.update(zip(_KEY_NAMES, cursor.key, strict=False))
    prepared = _prepared_index_page(
        session.get_bind().dialect, sort, content, walk_descending, tuple(binds)
    )
    found = prepared.rows(session, {**binds, _LIMIT_NAME: limit + 1})
    if content is Content.EXCERPT:
        # Most pages: _item's result, built inline, without a call and its branches per row.
        rows: list[Item] = [
            {
                "article_id": row[0],
                "source_id": row[1],
                "title": row[2],
                "word_count": row[3],
                "excerpt": row[4],
            }
            for row in found
        ]
    else:
        rows = [_item(row, content, keep_head=False) for row in found]
    return _paged(rows, _keys(sort, rows), limit, cursor)


def _keys(sort: Sort, rows: Sequence[Item]) -> list[tuple[KeyValue, ...]]:
    if key_arity(sort) == 1:
        return [(r["article_id"],) for r in rows]
    return [(r["title"], r["article_id"]) for r in rows]


_KEY_NAMES = ("key_0", "key_1")  # a cursor's key values, bound by these names
_LIMIT_NAME = "row_limit"


def _index_select(
    sort: Sort,
    content: Content,
    walk_descending: bool,
    after_key: bool,
    where: list[ColumnElement[bool]],
    *,
    head: bool = False,
) -> Select[Any]:
    """An index walk: `where`, past the bound cursor key if `after_key`, `row_limit` rows."""
    article = models.article_table
    columns: list[ColumnElement[Any]] = (
        [article.c.article_id] if key_arity(sort) == 1 else [article.c.title, article.c.article_id]
    )
    stmt = summary_select(content, head=head).where(*where)
    if after_key:
        names = _KEY_NAMES[: len(columns)]
        key: tuple[BindParameter[Any], ...] = tuple(bindparam(name) for name in names)
        stmt = stmt.where(_after(columns, key, walk_descending))
    stmt = stmt.order_by(*(c.desc() if walk_descending else c.asc() for c in columns))
    return stmt.limit(bindparam(_LIMIT_NAME, type_=Integer))


@lru_cache(maxsize=512)
def _prepared_index_page(
    dialect: Dialect,
    sort: Sort,
    content: Content,
    walk_descending: bool,
    bind_names: tuple[str, ...],
) -> Prepared:
    """One compiled statement per shape: the bind names decide the filters' SQL."""
    names = dict.fromkeys(name for name in bind_names if name not in _KEY_NAMES)
    where = filter_clauses_for(names, with_values=False)
    after_key = _KEY_NAMES[0] in bind_names
    return Prepared.of(_index_select(sort, content, walk_descending, after_key, where), dialect)


def _ranked_page(
    session: Session,
    index: SearchIndex,
    searcher: tantivy.Searcher,
    compiled: matching.Compiled,
    flt: ArticleFilter,
    limit: int,
    cursor: Cursor | None,
    content: Content,
    cache: RevisionCache | None,
) -> Page:
    """A page of hits by relevance: the first from the index's top hits, later ones cut
    from a ranking that reaches the cursor (app/queries/ranking.py)."""
    if cursor is None:
        pairs = matching.top(searcher, compiled, limit + 1)
        ranked = Ranking.of(pairs, complete=len(pairs) <= limit)
    else:
        ranked = ranking_to(
            searcher,
            compiled,
            cursor,
            limit,
            cache=cache,
            key=repr(("ranking", *flt.fingerprint_parts())),
            revision=index.revision(searcher),
        )
    return _slice_page(session, ranked, limit, cursor, content)


def _id_page(
    session: Session,
    index: SearchIndex,
    searcher: tantivy.Searcher,
    flt: ArticleFilter,
    sort: Sort,
    limit: int,
    cursor: Cursor | None,
    content: Content,
) -> Page:
    """Hits in article_id order, walked by the index from the cursor's id."""
    query = flt.search
    assert query is not None
    _, walk_descending = _walk(cursor, sort is Sort.NEWEST)
    extra = []
    if cursor is not None:
        last = cursor.key[0]
        assert isinstance(last, int)
        extra.append(matching.id_bound(last, descending=walk_descending))
    bounded = matching.compile_search(index, query, flt, extra=extra)
    ids = matching.by_id(searcher, bounded, limit + 1, descending=walk_descending)
    by_id = _fetch(session, ids, content)
    rows = [by_id[i] for i in ids if i in by_id]
    return _paged(rows, _keys(sort, rows), limit, cursor)


def _title_page(
    session: Session,
    searcher: tantivy.Searcher,
    compiled: matching.Compiled,
    flt: ArticleFilter,
    sort: Sort,
    limit: int,
    cursor: Cursor | None,
    content: Content,
) -> Page:
    """Hits in title order: the index gives every matching id, the title index walks them."""
    ids = matching.by_id(
        searcher, compiled, max(matching.count(searcher, compiled), 1), descending=False
    )
    if not ids:
        return Page([], has_next=False, has_prev=False)
    _, walk_descending = _walk(cursor, sort is Sort.TITLE_DESC)
    binds: dict[str, Any] = {}
    if cursor is not None:
        binds.update(zip(_KEY_NAMES, cursor.key, strict=False))
    where = [*filter_clauses(flt), _among(session, ids, binds)]
    stmt = _index_select(sort, content, walk_descending, cursor is not None, where, head=True)
    found = session.execute(stmt, {**binds, _LIMIT_NAME: limit + 1})
    rows = [_item(row, content) for row in found]
    return _paged(rows, _keys(sort, rows), limit, cursor)


def _among(session: Session, ids: list[int], binds: dict[str, Any]) -> ColumnElement[bool]:
    """article_id in `ids`, bound as one parameter however many there are."""
    article_id = models.article_table.c.article_id
    if session.get_bind().dialect.name == "sqlite":
        binds["among"] = orjson.dumps(ids).decode()
        members: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam("among"))
        )
        return article_id.in_(members)
    binds["among"] = ids
    return article_id == func.any(bindparam("among", type_=ARRAY(BigInteger())))


def _slice_page(
    session: Session, ranked: Ranking, limit: int, cursor: Cursor | None, content: Content
) -> Page:
    """A keyset page cut from a ranking: a binary search for the cursor's position."""
    n = len(ranked)
    positions: Sequence[int]
    if cursor is None:
        positions = range(min(n, limit + 1))
    else:
        score, article_id = cursor.key
        if not isinstance(score, int | float) or not isinstance(article_id, int):
            return Page([], has_next=False, has_prev=False)
        target = (-float(score), -article_id)
        if cursor.direction == "after":
            start = bisect_right(range(n), target, key=ranked.sort_key)
            positions = range(start, min(n, start + limit + 1))
        else:
            end = bisect_left(range(n), target, key=ranked.sort_key)
            positions = range(end - 1, max(-1, end - limit - 2), -1)
    ids = [ranked.ids[i] for i in positions]
    by_id = _fetch(session, ids, content)
    rows: list[Item] = []
    keys: list[tuple[KeyValue, ...]] = []
    for i in positions:
        item = by_id.get(ranked.ids[i])
        if item is not None:  # gone from the database since the index saw it: skip it
            item["score"] = ranked.scores[i]
            rows.append(item)
            keys.append((ranked.scores[i], ranked.ids[i]))
    return _paged(rows, keys, limit, cursor)


def _decorate(
    session: Session, searcher: tantivy.Searcher, compiled: matching.Compiled, rows: Sequence[Item]
) -> None:
    """Add `score` (unless ranked already) and `snippet` to the page's rows, in place."""
    if not rows:
        return
    ids = [r["article_id"] for r in rows]
    if any("score" not in item for item in rows):
        scores = matching.scores(searcher, compiled, ids)
        for item in rows:
            item.setdefault("score", scores.get(item["article_id"], 0.0))
    # One character past the window tells the snippet whether the body goes on.
    window = matching.SNIPPET_WINDOW_CHARS
    texts = bodies.body_starts(session, ids, window + 1)
    snippets = matching.Snippets(searcher, compiled)
    for item in rows:
        title, body = texts.get(item["article_id"], ("", ""))
        more = len(body) > window
        item["snippet"] = snippets.snippet(title, body[:window], item["_head"], more=more)


def similar_articles(
    session: Session,
    index: SearchIndex,
    article_id: int,
    flt: ArticleFilter,
    *,
    limit: int,
    content: Content,
) -> list[Item]:
    """The articles most like `article_id` (its title and the start of its body as stored),
    best first, with their `score`; NotFound for an unknown id, Gone for a taken-down one."""
    source = bodies.body_starts(session, [article_id], matching.SIMILAR_WINDOW_CHARS)
    if article_id not in source:
        raise _missing(session, article_id)
    query = matching.similar_query(*source[article_id], article_id, flt)
    pairs = matching.top(index.searcher(), matching.Compiled(query, None), limit)
    by_id = _fetch(session, [i for _, i in pairs], content)
    items = []
    for score, found in pairs:
        item = by_id.get(found)
        if item is not None:
            item.pop("_head", None)
            item["score"] = score
            items.append(item)
    return items
