"""The two hottest reads, served without FastAPI's per-request machinery.

`GET /v1/articles` (lists and searches) and `GET /v1/articles/{id}` are most of a client's
traffic. FastAPI's routing and per-parameter validation cost more than an indexed read
behind them (bench/list_api.py), so this pure-ASGI layer, innermost of our middleware,
parses those requests' parameters itself and calls the very functions the routes of
app/api/articles.py call. It handles only the happy path: anything it does not fully
understand (an odd spelling, a bad value, a repeated parameter, a domain error such as a
404 or a bad cursor) falls through to FastAPI, which stays the one definition of the API
and of every error. tests/test_fastpath.py checks that both paths give the same responses.
"""

import re
from typing import TypeVar

from sqlmodel import Session
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import articles
from app.api.deps import (
    DEFAULT_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_FACETS,
    MAX_FIELDS_CHARS,
    MAX_ID,
    MAX_IDS_CHARS,
    MAX_LIMIT,
    MAX_SOURCE_IDS,
    ListOptions,
    close_session,
    parse_fields,
    parse_ids,
    search_cache,
)
from app.api.problems import DATABASE_OUTAGES, send_unavailable
from app.errors import CorpusError, InvalidParameter
from app.queries.articles import ArticleFilter, Content, Sort
from app.queries.counts import CountMode, Facet
from app.queries.search import MAX_QUERY_CHARS

LIST_PATH = "/v1/articles"
DETAIL_PREFIX = LIST_PATH + "/"
# Canonical positive integers only: FastAPI decides every other spelling ("+5", " 5", "05").
_ID = re.compile(r"[1-9][0-9]{0,18}")
_SORTS = {s.value: s for s in Sort}
_CONTENTS = {c.value: c for c in Content}
_COUNTS = {c.value: c for c in CountMode}
_FACETS = {f.value: f for f in Facet}
# The list's parameters that take one value (source_id and facet repeat; others are ignored).
_SCALARS = frozenset(
    {"limit", "cursor", "sort", "content", "fields", "id_min", "id_max", "ids", "q", "count"}
)
T = TypeVar("T")


class FallThrough(Exception):
    """This request is not one the fast path serves: FastAPI takes it."""


def _id(text: str) -> int:
    if _ID.fullmatch(text) is None or (value := int(text)) > MAX_ID:
        raise FallThrough
    return value


def _choice(choices: dict[str, T], text: str) -> T:
    try:
        return choices[text]
    except KeyError:
        raise FallThrough from None


def list_params(query: QueryParams) -> tuple[ListOptions, ArticleFilter]:
    """The options of a list request in their plain spellings, or FallThrough."""
    seen: dict[str, str] = {}
    source_ids: list[int] = []
    facets: list[Facet] = []
    for name, value in query.multi_items():
        if name == "source_id":
            source_ids.append(_id(value))
        elif name == "facet":
            facets.append(_choice(_FACETS, value))
        elif name in _SCALARS:
            if name in seen:
                raise FallThrough  # a repeated scalar: FastAPI's rule decides which wins
            seen[name] = value
    limit = _id(seen["limit"]) if "limit" in seen else DEFAULT_LIMIT
    sort = _choice(_SORTS, seen["sort"]) if "sort" in seen else None
    content = _choice(_CONTENTS, seen.get("content", Content.EXCERPT.value))
    count = _choice(_COUNTS, seen.get("count", CountMode.NONE.value))
    cursor, fields, ids, q = seen.get("cursor"), seen.get("fields"), seen.get("ids"), seen.get("q")
    if (
        limit > MAX_LIMIT
        or len(source_ids) > MAX_SOURCE_IDS
        or len(facets) > MAX_FACETS
        or (cursor is not None and len(cursor) > MAX_CURSOR_CHARS)
        or (fields is not None and len(fields) > MAX_FIELDS_CHARS)
        or (ids is not None and len(ids) > MAX_IDS_CHARS)
        or (q is not None and len(q) > MAX_QUERY_CHARS)
    ):
        raise FallThrough
    try:
        flt = ArticleFilter(
            source_ids=tuple(source_ids),
            id_min=_id(seen["id_min"]) if "id_min" in seen else None,
            id_max=_id(seen["id_max"]) if "id_max" in seen else None,
            ids=parse_ids(ids),
            q=q,
        )
        fields_asked = parse_fields(fields)
    except InvalidParameter:
        raise FallThrough from None
    options = ListOptions(
        flt, sort, limit, cursor, fields_asked, content, count, list(dict.fromkeys(facets))
    )
    return options, flt


class FastReadsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not (path == LIST_PATH or path.startswith(DETAIL_PREFIX))
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        try:
            response = await self._serve(scope, receive, path)
        except (FallThrough, CorpusError):
            # CorpusError: a 404 or a bad cursor. FastAPI does the request again and
            # renders the problem; only errors pay twice.
            await self.app(scope, receive, send)
            return
        except DATABASE_OUTAGES as exc:
            await send_unavailable(scope, send, exc)
            return
        await response(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, path: str) -> Response:
        state = scope["app"].state
        if path == LIST_PATH:
            options, flt = list_params(QueryParams(scope["query_string"]))
            request = Request(scope, receive)
            session = Session(state.engine)
            try:
                return await articles.list_page(
                    request, session, state.settings, search_cache(state), options, flt
                )
            finally:
                await close_session(session)
        article_id = _id(path[len(DETAIL_PREFIX) :])
        session = Session(state.engine)
        try:
            return await articles.get_article(article_id, session)
        finally:
            await close_session(session)
