"""/v1/articles: keyset pages of summaries (filtered, searched, counted), and one article."""

from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlmodel import Session
from starlette.responses import Response

from app import meta as meta_queries
from app import schemas
from app.api.calls import run_db, run_db_short
from app.api.deps import (
    ArticleId,
    CacheDep,
    SessionDep,
    SettingsDep,
    meaning_view,
    search_index,
)
from app.api.list_query import (
    ArticleListQueryDep,
    ListOptions,
    PageRequest,
    SimilarQueryDep,
    parse_fields,
)
from app.api.pagination import link_header, page_links
from app.api.problems import GONE_RESPONSES, PROBLEM_RESPONSES
from app.api.responses import json_bytes_response, model_json
from app.queries import articles as article_queries
from app.queries import bodies, counts, suggestions
from app.queries import cursor as cursors
from app.queries.articles import ArticleFilter, Content, Item
from app.queries.cache import BYTES_PER_WEIGHT, newest_revision
from app.queries.counts import CountMode
from app.queries.prepared import loop_engine_of
from app.queries.semantic import Meaning
from app.search.index import IndexView
from app.search.language import SearchMode
from app.search.sync import Follower

router = APIRouter(prefix="/v1/articles", tags=["articles"], responses=PROBLEM_RESPONSES)
# A detail whose body SQLite says is at most this large is built on the event loop (an
# in-process read of microseconds); anything larger, and every PostgreSQL read, on a thread.
INLINE_BODY_BYTES = 64 << 10
# More-like-this kept the most of its top 10 on the article's topic in bench/relevance.py
# (keyword 0.999, hybrid 0.993, semantic 0.924: docs/search.md).
SIMILAR_DEFAULT = SearchMode.KEYWORD


def _project(rows: Iterable[Item], fields: frozenset[str] | None) -> list[Item]:
    if fields is None:
        return list(rows)
    return [{k: v for k, v in row.items() if k in fields} for row in rows]


def _single_read(options: ListOptions) -> bool:
    """A pure index walk: one indexed read, no search, count or facets."""
    return options.flt.q is None and options.count is CountMode.NONE and not options.facets


async def list_page(page: PageRequest) -> Response:
    """A page of articles as a response (see page_reply)."""
    body, link = await page_reply(page)
    return json_bytes_response(body, {"Link": link} if link else None)


async def page_reply(page: PageRequest) -> tuple[bytes, str | None]:
    """A page's body and Link header: built inline when it is a pure index walk, else kept
    per data revision.

    Searches, counts and facets cost far more than an index walk, so their whole reply is
    kept in the cache, keyed by the exact request (its links echo the query string) and
    valid while no write has raised the newest revision: a repeated search costs one index
    probe.
    """
    session = page.session
    if _single_read(page.options):
        # Bodies of any size, or a first read of the database's cursor secret (a session
        # transaction): off the event loop.
        if page.options.content is Content.FULL or _known_secret(page) is None:
            return await run_db(_build_page, page, None)
        return await run_db_short(session, _build_page, page, None)
    query = page.request.scope["query_string"].decode("latin-1")
    view = _index_view(page)
    meaning = _meaning(page)
    revision = await run_db_short(session, newest_revision, session)
    if view is not None and page.options.flt.search is None and view.revision() < revision:
        view = None  # behind the database: a list's counts come from the database
    # A kept reply is valid for one state of the database and of the indexes together.
    revisions = f"{view.revision() if view else 0}:{meaning.vectors.revision if meaning else 0}"
    key = f"page:{revisions}:{page.request.scope['path']}?{query}"
    hit = page.cache.get(key, revision)
    if isinstance(hit, tuple):
        return hit
    body, link = await run_db(_build_page, page, view, snapshot=True, meaning=meaning)
    page.cache.put(key, revision, (body, link), weight=1 + len(body) // BYTES_PER_WEIGHT)
    return body, link


def _index_view(page: PageRequest) -> IndexView | None:
    """The one view of the search index a page reads: a search's, or for a list's exact
    total or facets, the index's if it is ready (it counts a million articles in
    milliseconds where the database scans them); else None."""
    options = page.options
    search = options.flt.search
    if search is not None:
        return None if search.matches_nothing else search_index(page.request.app.state).view()
    if options.count is not CountMode.EXACT and not options.facets:
        return None
    follower: Follower | None = getattr(page.request.app.state, "follower", None)
    if follower is None or not follower.status().ready or follower.index is None:
        return None
    return follower.index.view()


def _meaning(page: PageRequest) -> Meaning | None:
    """The view of the vector index a search by meaning reads (None for a keyword one)."""
    flt = page.options.flt
    if flt.mode is SearchMode.KEYWORD or flt.search is None or flt.search.matches_nothing:
        return None
    return meaning_view(page.request.app.state)


def _known_secret(page: PageRequest) -> str | None:
    """The configured secret, else the database's own if this process has read it."""
    known: str | None = getattr(page.request.app.state, "cursor_secret", None)
    return page.settings.cursor_secret or known


def _cursor_secret(page: PageRequest) -> str:
    """The configured secret, else the database's own, read once per process."""
    secret = _known_secret(page)
    if secret is None:
        secret = page.request.app.state.cursor_secret = meta_queries.cursor_secret(page.session)
    return secret


def _build_page(
    page: PageRequest,
    index: IndexView | None,
    *,
    snapshot: bool = False,
    meaning: Meaning | None = None,
) -> tuple[bytes, str | None]:
    """Shared by every list of articles: decode the cursor, fetch, count, link the neighbours.
    Returns the body and the Link header.

    The body is built as plain dicts and serialised once by orjson: with `fields` an item
    holds only the keys asked for, which a pydantic model with defaults could not express.
    With `snapshot`, a list's several reads (its page, its count, its facets) share one
    transaction (Prepared.rows). A search reads the database once, for its page's rows (its
    counts and facets are the index's, as of the same view): no transaction, so on
    PostgreSQL no BEGIN and ROLLBACK round trips around that one statement.
    """
    session, options, flt = page.session, page.options, page.options.flt
    secret = _cursor_secret(page)
    if snapshot and flt.search is None:
        session.connection()
    sort = article_queries.resolve_sort(options.sort, flt)
    fingerprint = cursors.fingerprint("articles", sort.value, *flt.fingerprint_parts())
    given = None
    if options.cursor is not None:
        given = cursors.decode(
            options.cursor,
            secret,
            expected_fingerprint=fingerprint,
            key_arity=article_queries.key_arity(sort),
        )
    rows = article_queries.list_articles(
        session,
        flt,
        sort=sort,
        limit=options.limit,
        cursor=given,
        content=options.content,
        cache=page.cache,
        index=index,
        meaning=meaning,
    )
    total = counts.total(session, flt, options.count, page.cache, index, meaning)
    next_url, prev_url = page_links(page.request, rows, given, fingerprint, secret)
    body: dict[str, Any] = {
        "items": _project(rows.rows, options.fields),
        "next": next_url,
        "prev": prev_url,
        "total": total.value,
        "total_is_exact": total.is_exact,
    }
    if options.facets:
        body["facets"] = counts.facets(session, flt, options.facets, page.cache, index, meaning)
    if flt.search is not None:  # a search that found nothing offers a correction
        asked = not rows.rows and given is None
        found = suggestions.suggest(session, index, flt) if asked and index else None
        body["suggestion"] = found
    return orjson.dumps(body, option=orjson.OPT_UTC_Z), link_header(next_url, prev_url)


@router.get("", operation_id="list_articles", response_model=schemas.ArticlePage)
async def list_articles(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    query: ArticleListQueryDep,
) -> Response:
    """Articles, newest `article_id` first (or as `sort` says), one keyset page at a time.

    `q` searches title and content (or the one `search_in` names): words are ANDed,
    `"a phrase"`, `-excluded` (or `NOT`), `OR` between two items, parentheses group, `palm*`
    is a prefix; any text is safe; `typos=auto` forgives typos. Hits are ranked by relevance
    unless `sort` says otherwise and carry `score` (higher is better) and a `snippet` of
    HTML whose matches are wrapped in `<mark>`…`</mark>`, the rest escaped. A search that
    finds nothing offers a `suggestion` ("did you mean"). Follow `next` (or the `Link`
    header) to walk forward and `prev` to walk back; the cursor in those URLs is opaque and
    only valid with the same search, filters and sort.
    """
    options = query.options(query.source_id)
    return await list_page(PageRequest(request, session, settings, cache, options))


@router.get(
    "/{article_id}",
    operation_id="get_article",
    response_model=schemas.Article,
    responses=GONE_RESPONSES,
)
async def get_article(article_id: ArticleId, session: SessionDep) -> Response:
    """One article, its content byte for byte as ingested; `410 Gone` once taken down."""
    return json_bytes_response(await article_body(article_id, session))


async def article_body(article_id: int, session: Session) -> bytes:
    """The Article document of `article_id`, or NotFound, or Gone. Read and written on the
    event loop when SQLite says the body is small (most are), else on a worker thread."""
    size = bodies.body_bytes(session, article_id)
    if size is not None and size <= INLINE_BODY_BYTES:
        return article_json(article_queries.get_article_fields(session, article_id))
    if size is None and loop_engine_of(session) is not None:  # PostgreSQL: read on the loop
        find = article_queries.find_small_article_fields
        fields = await run_db_short(session, find, session, article_id, INLINE_BODY_BYTES)
        if fields is None:  # no such row: why (taken down, or never there), not a second read
            raise await run_db(article_queries.missing, session, article_id)
        if fields["content"] is not None:
            return article_json(fields)
    # A large body (read, decoded and written off the loop), or none: NotFound or Gone.
    return await run_db(_article_body, session, article_id)


def _article_body(session: Session, article_id: int) -> bytes:
    return article_json(article_queries.get_article_fields(session, article_id))


def article_json(fields: dict[str, Any]) -> bytes:
    """The Article document for `fields` (in schema order): orjson writes the same JSON as
    the pydantic model without building one (tests/test_api_articles.py compares them),
    except integers past 64 bits in `extra`, which it refuses and pydantic writes."""
    try:
        return orjson.dumps(fields, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return model_json(schemas.Article.model_construct(**fields))


@router.get(
    "/{article_id}/similar",
    operation_id="list_similar_articles",
    response_model=schemas.ArticlePage,
    responses=GONE_RESPONSES,
)
async def list_similar_articles(
    request: Request, article_id: ArticleId, session: SessionDep, query: SimilarQueryDep
) -> Response:
    """Articles most like this one, best first: by shared words (`mode=keyword`, the
    default: more-like-this over its title and body), by meaning (`semantic`) or both
    fused (`hybrid`).

    Items are list items with a `score`; `source_id` narrows them, `content` and `fields`
    shape them as on list_articles. One page: `next` and `prev` are null.
    """
    wanted = parse_fields(query.fields)
    state = request.app.state
    index = search_index(state)
    mode = query.mode or SIMILAR_DEFAULT
    meaning = None if mode is SearchMode.KEYWORD else meaning_view(state)
    flt = ArticleFilter(source_ids=tuple(query.source_id))
    items = await run_db(
        article_queries.similar_articles,
        session,
        index,
        article_id,
        flt,
        limit=query.limit,
        content=query.content,
        mode=mode,
        meaning=meaning,
    )
    body = {"items": _project(items, wanted), "next": None, "prev": None}
    body |= {"total": None, "total_is_exact": None}
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")
