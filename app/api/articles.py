"""/v1/articles: keyset pages of summaries (filtered, searched, counted), and one article."""

from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from app import schemas
from app.api.calls import run_db, run_db_short
from app.api.deps import (
    DEFAULT_LIMIT,
    ArticleId,
    CacheDep,
    ContentParam,
    FieldsParam,
    Limit,
    ListOptions,
    ListOptionsDep,
    SessionDep,
    SettingsDep,
    SourceIds,
    parse_fields,
    search_index,
)
from app.api.pagination import link_header, page_links
from app.api.problems import GONE_RESPONSES, PROBLEM_RESPONSES
from app.api.responses import model_json
from app.queries import articles as article_queries
from app.queries import counts
from app.queries import cursor as cursors
from app.queries.articles import ArticleFilter, Content, Item
from app.queries.cache import BYTES_PER_WEIGHT, RevisionCache, newest_revision
from app.queries.counts import CountMode

router = APIRouter(prefix="/v1/articles", tags=["articles"], responses=PROBLEM_RESPONSES)


def _project(rows: Iterable[Item], fields: frozenset[str] | None) -> list[Item]:
    if fields is None:
        return list(rows)
    return [{k: v for k, v in row.items() if k in fields} for row in rows]


def _single_read(options: ListOptions, flt: ArticleFilter) -> bool:
    """A pure index walk: one indexed read, no search, count or facets."""
    return flt.q is None and options.count is CountMode.NONE and not options.facets


async def list_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: RevisionCache,
    options: ListOptions,
    flt: ArticleFilter,
) -> Response:
    """A page of articles as a response (see page_reply)."""
    return _page_response(*await page_reply(request, session, settings, cache, options, flt))


async def page_reply(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: RevisionCache,
    options: ListOptions,
    flt: ArticleFilter,
) -> tuple[bytes, str | None]:
    """A page's body and Link header: built inline when it is a pure index walk, else kept
    per data revision.

    Searches, counts and facets cost milliseconds to seconds, so their whole reply is kept
    in `cache`, keyed by the exact request (its links echo the query string) and valid
    while no write has raised the newest revision: a repeated search costs one index probe.
    """
    if _single_read(options, flt):
        return await run_db_short(
            session, _build_page, request, session, settings, cache, options, flt
        )
    query = request.scope["query_string"].decode("latin-1")
    index_revision = _searched_revision(request, flt)
    key = f"page:{index_revision}:{request.scope['path']}?{query}"
    revision = await run_db_short(session, newest_revision, session)
    hit = cache.get(key, revision)
    if isinstance(hit, tuple):
        return hit
    body, link = await run_db(
        session, _build_page, request, session, settings, cache, options, flt, snapshot=True
    )
    cache.put(key, revision, (body, link), weight=1 + len(body) // BYTES_PER_WEIGHT)
    return body, link


def _searched_revision(request: Request, flt: ArticleFilter) -> int:
    """The revision the search index has applied, for a page that searches (else 0): a kept
    reply is valid for one state of the database and of the index together."""
    if flt.search is None or flt.search.matches_nothing:
        return 0
    follower = getattr(request.app.state, "follower", None)
    return follower.status().index_revision if follower is not None else 0


def _page_response(body: bytes, link: str | None) -> Response:
    return Response(body, media_type="application/json", headers={"Link": link} if link else None)


def _build_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: RevisionCache,
    options: ListOptions,
    flt: ArticleFilter,
    *,
    snapshot: bool = False,
) -> tuple[bytes, str | None]:
    """Shared by every list of articles: decode the cursor, fetch, count, link the neighbours.
    Returns the body and the Link header.

    The body is built as plain dicts and serialised once by orjson: with `fields` an item
    holds only the keys asked for, which a pydantic model with defaults could not express.
    With `snapshot`, the several reads that follow share one transaction (Prepared.rows).
    """
    if snapshot:
        session.connection()
    sort = article_queries.resolve_sort(options.sort, flt)
    fingerprint = cursors.fingerprint("articles", sort.value, *flt.fingerprint_parts())
    given = None
    if options.cursor is not None:
        given = cursors.decode(
            options.cursor,
            settings.cursor_secret,
            expected_fingerprint=fingerprint,
            key_arity=article_queries.key_arity(sort),
        )
    query = flt.search
    index = None
    if query is not None and not query.matches_nothing:
        index = search_index(request.app.state)
    page = article_queries.list_articles(
        session,
        flt,
        sort=sort,
        limit=options.limit,
        cursor=given,
        content=options.content,
        cache=cache,
        index=index,
    )
    total = counts.total(session, flt, options.count, cache, index)
    next_url, prev_url = page_links(request, page, given, fingerprint, settings.cursor_secret)
    body: dict[str, Any] = {
        "items": _project(page.rows, options.fields),
        "next": next_url,
        "prev": prev_url,
        "total": total.value,
        "total_is_exact": total.is_exact,
    }
    if options.facets:
        body["facets"] = counts.facets(session, flt, options.facets, cache, index)
    return orjson.dumps(body), link_header(next_url, prev_url)


@router.get("", operation_id="list_articles", response_model=schemas.ArticlePage)
async def list_articles(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    options: ListOptionsDep,
    source_id: SourceIds = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """Articles, newest `article_id` first (or as `sort` says), one keyset page at a time.

    `q` searches title and content: words are ANDed, `"a phrase"`, `-excluded`, `OR`
    between two items; any text is safe. Hits are ranked by relevance unless `sort` says
    otherwise and carry `score` (higher is better) and a `snippet` of HTML whose matches
    are wrapped in `<mark>`…`</mark>`, the rest escaped. Follow `next` (or the `Link`
    header) to walk forward and `prev` to walk back; the cursor in those URLs is opaque and
    only valid with the same search, filters and sort.
    """
    flt = article_queries.with_sources(options.flt, source_id)
    return await list_page(request, session, settings, cache, options, flt)


@router.get(
    "/{article_id}",
    operation_id="get_article",
    response_model=schemas.Article,
    responses=GONE_RESPONSES,
)
async def get_article(article_id: ArticleId, session: SessionDep) -> Response:
    """One article, its content byte for byte as ingested; `410 Gone` once taken down."""
    return Response(await article_body(article_id, session), media_type="application/json")


async def article_body(article_id: int, session: SessionDep) -> bytes:
    """The Article document of `article_id`, or NotFound, or Gone."""
    fields = await run_db_short(session, article_queries.get_article_fields, session, article_id)
    return article_json(fields)


def article_json(fields: dict[str, Any]) -> bytes:
    """The Article document for `fields` (in schema order): orjson writes the same JSON as
    the pydantic model at a fraction of the cost (tests/test_api_articles.py compares
    them), except integers past 64 bits in `extra`, which it refuses and pydantic writes."""
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
    request: Request,
    article_id: ArticleId,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    content: ContentParam = Content.EXCERPT,
    fields: FieldsParam = None,
    source_id: SourceIds = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """Articles most like this one (more-like-this over its title and body), best first.

    Items are list items with a `score`; `source_id` narrows them, `content` and `fields`
    shape them as on list_articles. One page: `next` and `prev` are null.
    """
    wanted = parse_fields(fields)
    index = search_index(request.app.state)
    flt = ArticleFilter(source_ids=tuple(source_id))
    items = await run_db(
        session,
        article_queries.similar_articles,
        session,
        index,
        article_id,
        flt,
        limit=limit,
        content=content,
    )
    body = {"items": _project(items, wanted), "next": None, "prev": None}
    body |= {"total": None, "total_is_exact": None}
    return Response(orjson.dumps(body), media_type="application/json")
