"""Reads of the article table: one article, and keyset pages of summaries, searched or not.

Takes a Session (and, to search, the search index), returns rows; knows nothing of HTTP.
Pages never use OFFSET: each walks an index (or, for relevance, the ranked matches) from the
last key seen, fetching one row more than asked to learn if another page exists. Searches
ask the search index for a page of ids first, then the database for the columns of just
those rows, and cut each snippet from the database's copy of the text.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import tantivy
from sqlalchemy import (
    Dialect,
    Integer,
    bindparam,
    case,
    func,
    select,
)
from sqlmodel import Session

from app import models
from app.errors import Gone, NotFound, ServiceUnavailable
from app.queries import bodies, semantic, takedowns
from app.queries.cache import RevisionCache
from app.queries.cursor import Cursor, KeyValue
from app.queries.filters import filter_clauses
from app.queries.pages import (
    BY_DATE,
    DESCENDING,
    Content,
    Item,
    Page,
    PageQuery,
    Sort,
    among,
    among_value,
    check_key,
    fetch_items,
    in_order,
    item_of,
    key_arity,
    keys_of,
    paged,
    summary_select,
    walk,
)
from app.queries.prepared import Prepared
from app.queries.ranking import Ranking, ranking_to
from app.queries.semantic import Meaning
from app.queries.walks import KEY_NAMES, LIMIT_NAME, index_page, order_of, walk_select
from app.search import matching, typos
from app.search.filters import ArticleFilter, with_sources
from app.search.index import IndexView, SearchIndex
from app.search.language import SearchMode

__all__ = [  # re-exported: the API and the export engine import them from here
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


# What the detail endpoint shows of an article (the change feed adds its revision).
DETAIL_COLUMNS = (
    "article_id",
    "source_id",
    "title",
    "content",
    "word_count",
    "published_at",
    "url",
    "author",
    "extra",
    "ingested_at",
    "updated_at",
)


DETAIL_SELECT = select(*(models.article_table.c[name] for name in DETAIL_COLUMNS)).where(
    models.article_table.c.article_id == bindparam("article_id")
)


@lru_cache(maxsize=8)  # one entry per engine's dialect: one in production
def _prepared_detail(dialect: Dialect) -> Prepared:
    return Prepared.of(DETAIL_SELECT, dialect)


def get_article_fields(session: Session, article_id: int) -> dict[str, Any]:
    """One article's public fields as a dict: one statement, compiled once."""
    rows = _prepared_detail(session.get_bind().dialect).rows(session, {"article_id": article_id})
    if not rows:
        raise missing(session, article_id)
    return dict(zip(DETAIL_COLUMNS, rows[0], strict=True))


def _bounded(name: str) -> Any:
    column = models.article_table.c[name]
    if name != "content":
        return column
    small = func.octet_length(column) <= bindparam("max_bytes", type_=Integer)
    return case((small, column), else_=None).label(name)


# PostgreSQL tells a body's size from its stored header, without reading it.
BOUNDED_DETAIL_SELECT = select(*(_bounded(name) for name in DETAIL_COLUMNS)).where(
    models.article_table.c.article_id == bindparam("article_id")
)


@lru_cache(maxsize=8)  # one entry per engine's dialect: one in production
def _prepared_bounded_detail(dialect: Dialect) -> Prepared:
    return Prepared.of(BOUNDED_DETAIL_SELECT, dialect)


def find_small_article_fields(
    session: Session, article_id: int, max_bytes: int
) -> dict[str, Any] | None:
    """One article's public fields as a dict (None when there is no such row), `content`
    None when the body is over `max_bytes`: a read on the event loop must not bring (and
    decode) a body of any size."""
    prepared = _prepared_bounded_detail(session.get_bind().dialect)
    rows = prepared.rows(session, {"article_id": article_id, "max_bytes": max_bytes})
    return dict(zip(DETAIL_COLUMNS, rows[0], strict=True)) if rows else None


def missing(session: Session, article_id: int) -> Gone | NotFound:
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


def list_articles(
    session: Session,
    flt: ArticleFilter,
    *,
    sort: Sort = Sort.NEWEST,
    limit: int = 20,
    cursor: Cursor | None = None,
    content: Content = Content.EXCERPT,
    cache: RevisionCache | None = None,
    index: IndexView | None = None,
    meaning: Meaning | None = None,
) -> Page:
    """One keyset page of article summaries in `sort` order (see `resolve_sort`).

    A search needs `index`, the request's one view of the search index, and a search by
    meaning (`flt.mode`) also `meaning`, its view of the vector index. Each hit also
    carries `score` and `snippet` (HTML, matches in <mark>). Given a `cache`, the ranking a
    cursor page needs is kept while the index is unchanged.
    """
    if cursor is not None:
        check_key(sort, cursor.key)
    ask = PageQuery(flt, sort, limit, cursor, content)
    query = flt.search
    if query is None:
        return index_page(session, ask)
    if query.matches_nothing:
        return Page([], has_next=False, has_prev=False)
    if index is None:
        raise ServiceUnavailable("Search is not available: there is no search index.")
    searcher = index.searcher
    compiled = matching.compile_search(index, query, flt)
    if flt.mode is not SearchMode.KEYWORD:
        if meaning is None:
            raise ServiceUnavailable("Search by meaning is not available: no vector index.")
        ranked = semantic.ranking(index, meaning, flt, cache, compiled)
        page = _slice_page(session, ranked, ask)
    elif sort is Sort.RELEVANCE and query.ranked:
        page = _ranked_page(session, index, compiled, ask, cache)
    elif key_arity(sort) == 1:
        page = _id_page(session, index, ask)
    elif sort in BY_DATE:
        page = _date_page(session, searcher, compiled, ask)
    else:
        page = _title_page(session, searcher, compiled, ask)
    _decorate(session, index, compiled, page.rows)
    for item in page.rows:
        item.pop("_head", None)
    return page


# What a hit's snippet is cut from: one character past the window tells it whether the
# body goes on.
SNIPPET_CHARS = matching.SNIPPET_WINDOW_CHARS + 1


def _ranked_page(
    session: Session,
    index: IndexView,
    compiled: matching.Compiled,
    ask: PageQuery,
    cache: RevisionCache | None,
) -> Page:
    """A page of hits by relevance: the first from the index's top hits, later ones cut
    from a ranking that reaches the cursor (app/queries/ranking.py)."""
    if ask.cursor is None:
        pairs = matching.top(index.searcher, compiled, ask.limit + 1)
        ranked = Ranking.of(pairs, complete=len(pairs) <= ask.limit)
    else:
        ranked = ranking_to(
            index.searcher,
            compiled,
            ask.cursor,
            ask.limit,
            cache=cache,
            key=repr(("ranking", *ask.flt.fingerprint_parts())),
            revision=index.revision(),
        )
    return _slice_page(session, ranked, ask)


def _id_page(session: Session, index: IndexView, ask: PageQuery) -> Page:
    """Hits in article_id order, walked by the index from the cursor's id."""
    query = ask.flt.search
    assert query is not None
    _, walk_descending = walk(ask.cursor, ask.sort is Sort.NEWEST)
    extra = []
    if ask.cursor is not None:
        last = ask.cursor.key[0]
        assert isinstance(last, int)
        extra.append(matching.id_bound(last, descending=walk_descending))
    bounded = matching.compile_search(index, query, ask.flt, extra=extra)
    ids = matching.by_id(index.searcher, bounded, ask.limit + 1, descending=walk_descending)
    rows = in_order(fetch_items(session, ids, ask.content, body_chars=SNIPPET_CHARS), ids)
    return paged(rows, keys_of(ask.sort, rows), ask.limit, ask.cursor)


def _date_page(
    session: Session, searcher: tantivy.Searcher, compiled: matching.Compiled, ask: PageQuery
) -> Page:
    """Hits by date, undated last, walked by the index from the cursor's key."""
    backward, walk_descending = walk(ask.cursor, ask.sort in DESCENDING)
    key = ask.cursor.key if ask.cursor is not None else None
    ids = matching.by_date(
        searcher, compiled, ask.limit + 1, descending=walk_descending, backward=backward, after=key
    )
    rows = in_order(fetch_items(session, ids, ask.content, body_chars=SNIPPET_CHARS), ids)
    return paged(rows, keys_of(ask.sort, rows), ask.limit, ask.cursor)


def _title_page(
    session: Session, searcher: tantivy.Searcher, compiled: matching.Compiled, ask: PageQuery
) -> Page:
    """Hits in title order: the index gives every matching id, the title index walks them."""
    ids = matching.by_id(
        searcher, compiled, max(matching.count(searcher, compiled), 1), descending=False
    )
    if not ids:
        return Page([], has_next=False, has_prev=False)
    cursor = ask.cursor
    _, walk_descending = walk(cursor, ask.sort is Sort.TITLE_DESC)
    binds: dict[str, Any] = {}
    if cursor is not None:
        binds.update(zip(KEY_NAMES, cursor.key, strict=False))
    dialect = session.get_bind().dialect.name
    binds["among"] = among_value(dialect, ids)
    where = [*filter_clauses(ask.flt), among(dialect, "among")]
    order = order_of(ask.sort)
    stmt = walk_select(order, ask.content, walk_descending, cursor is not None, where, head=True)
    found = session.execute(stmt, {**binds, LIMIT_NAME: ask.limit + 1})
    rows = [item_of(row, ask.content) for row in found]
    return paged(rows, keys_of(ask.sort, rows), ask.limit, cursor)


def _slice_page(session: Session, ranked: Ranking, ask: PageQuery) -> Page:
    """A keyset page cut from a ranking: a binary search for the cursor's position."""
    limit, cursor = ask.limit, ask.cursor
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
    by_id = fetch_items(session, ids, ask.content, body_chars=SNIPPET_CHARS)
    rows: list[Item] = []
    keys: list[tuple[KeyValue, ...]] = []
    for i in positions:
        item = by_id.get(ranked.ids[i])
        if item is not None:  # gone from the database since the index saw it: skip it
            item["score"] = ranked.scores[i]
            rows.append(item)
            keys.append((ranked.scores[i], ranked.ids[i]))
    return paged(rows, keys, limit, cursor)


def _decorate(
    session: Session, index: IndexView, compiled: matching.Compiled, rows: Sequence[Item]
) -> None:
    """Add `score` (unless ranked already) and `snippet` to the page's rows, in place; the
    snippets also mark the corrections found in the hits that needed one."""
    if not rows:
        return
    searcher = index.searcher
    ids = [r["article_id"] for r in rows]
    if any("score" not in item for item in rows):
        scores = matching.scores(searcher, compiled, ids)
        for item in rows:
            item.setdefault("score", scores.get(item["article_id"], 0.0))
    window = matching.SNIPPET_WINDOW_CHARS
    texts = {item["article_id"]: item.pop("_body") for item in rows if "_body" in item}
    unread = [i for i in ids if i not in texts]  # SQLite, and pages walked in SQL by title
    titles = {item["article_id"]: item["title"] for item in rows}
    texts.update(bodies.body_starts(session, unread, SNIPPET_CHARS, titles))
    # Only hits that needed a correction (score 0) are read for corrections to mark: a hit
    # as typed shows the words typed, and a page of them costs no scan.
    fixed = {item["article_id"] for item in rows if compiled.tolerant and not item["score"]}
    searched = [
        text
        for article_id, (title, body) in texts.items()
        if article_id in fixed
        for f, text in (("title", title), ("content", body[:window]))
        if f in compiled.fields
    ]
    corrected = typos.corrected_stems(index.index, compiled.tolerant, searched)
    snippets = matching.Snippets(searcher, compiled, corrected)
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
    mode: SearchMode = SearchMode.KEYWORD,
    meaning: Meaning | None = None,
) -> list[Item]:
    """The articles most like `article_id` (its title and the start of its body as stored),
    best first, with their `score`: by its words (more-like-this), its meaning, or both
    (`mode`; the last two need `meaning`); NotFound for an unknown id, Gone for a
    taken-down one."""
    source = bodies.body_starts(session, [article_id], matching.SIMILAR_WINDOW_CHARS)
    if article_id not in source:
        raise missing(session, article_id)
    title, body = source[article_id]
    if mode is not SearchMode.KEYWORD:
        if meaning is None:
            raise ServiceUnavailable("Search by meaning is not available: no vector index.")
        pairs = semantic.similar(
            index.view(), meaning, article_id, title, body, flt, mode=mode, limit=limit
        )
    else:
        query = matching.similar_query(title, body, article_id, flt)
        pairs = matching.top(index.searcher(), matching.Compiled(query, None), limit)
    by_id = fetch_items(session, [i for _, i in pairs], content)
    items = []
    for score, found in pairs:
        item = by_id.get(found)
        if item is not None:
            item.pop("_head", None)
            item["score"] = score
            items.append(item)
    return items
