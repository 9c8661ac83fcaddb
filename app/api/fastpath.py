"""The two hottest reads, served without FastAPI's per-request machinery or the middleware.

`GET /v1/articles` (lists and searches) and `GET /v1/articles/{id}` are most of a client's
traffic. FastAPI's routing and per-parameter validation, and the middleware layers around
it, cost more than an indexed read behind them (bench/list_api.py, bench/inprocess.py), so
this pure-ASGI layer, in front of FastAPI itself (app/main.py), parses those requests'
parameters itself, calls the very functions the routes of app/api/articles.py call, and
finishes the response with the same functions and settings the middleware uses:
validators and Cache-Control (caching.py), gzip as Starlette's GZipMiddleware decides it,
Starlette's CORS headers, the request id and the access line (request_id.py), within the
same load-shedding gate.

It handles only the happy path: anything it does not fully understand (an odd spelling, a
bad value, a repeated parameter, a broken request limit, a domain error such as a 404 or
a bad cursor, an unexpected error) falls through to the full stack, which stays the one
definition of the API and of every error. tests/test_fastpath.py checks that both paths
give the same responses, headers included.
"""

import gzip
import logging
import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from sqlmodel import Session
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import articles
from app.api.caching import (
    GZIP_LEVEL,
    GZIP_MIN_SIZE,
    NO_STORE,
    request_validators,
    tagged,
    with_default,
)
from app.api.calls import in_thread
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
from app.api.limits import violation
from app.api.problems import DATABASE_OUTAGES, send_unavailable
from app.api.request_id import REQUEST_ID_KEY, assign_id, log_access, request_id_of
from app.api.shedding import Admission, Gate, send_shed
from app.errors import CorpusError, InvalidParameter
from app.queries.articles import ArticleFilter, Content, Sort
from app.queries.counts import CountMode, Facet
from app.queries.search import MAX_QUERY_CHARS

# GZipMiddleware's default thread_minimum_size: larger bodies are compressed on a thread.
GZIP_THREAD_SIZE = 128 * 1024
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
log = logging.getLogger(__name__)
_JSON_TYPE = (b"content-type", b"application/json")
_VARY = (b"vary", b"Accept-Encoding")


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
    def __init__(
        self, app: ASGIApp, *, gate: Gate, cache_control: bytes, cors: CORSMiddleware | None
    ) -> None:
        self.app = app
        self.gate = gate
        self.cache_control = cache_control  # for 200s, as ConditionalGetMiddleware's
        self.cors = cors  # only its header logic is used

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not (path == LIST_PATH or path.startswith(DETAIL_PREFIX))
            or scope.get("root_path")
            or violation(scope) is not None
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        admission, receive = await self.gate.admit(receive)
        if admission is Admission.GONE:
            return
        if admission is Admission.SHED:
            reply: tuple[Message, bytes] | None = await _problem(scope, send_shed)
        else:
            try:
                reply = await self._serve(scope, receive, path)
            except (FallThrough, CorpusError):
                # CorpusError: a 404 or a bad cursor. The full stack does the request again
                # and renders the problem; only errors pay twice.
                reply = None
            except DATABASE_OUTAGES as exc:
                reply = await _problem(scope, partial(send_unavailable, exc=exc))
            except Exception:
                # A bug: the full stack does the request again, and its error handler logs
                # and renders the 500 (with the request's id) if it fails there too.
                log.warning("fast read of %s failed; the full stack answers", path, exc_info=True)
                reply = None
            except BaseException:
                log_access(scope, assign_id(scope), 500, started)
                raise
            finally:
                self.gate.leave()
        if reply is None:
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope) or assign_id(scope)
        status = await self._finish(scope, send, request_id, *reply)
        log_access(scope, request_id, status, started)

    async def _finish(
        self, scope: Scope, send: Send, request_id: str, start: Message, body: bytes
    ) -> int:
        """Send a complete response as the middleware stack would have finished it."""
        if start["status"] == 200:
            if_none_match, accept_encoding = request_validators(scope)
            start = tagged(
                start,
                body,
                accept_encoding=accept_encoding,
                if_none_match=if_none_match,
                cache_control=self.cache_control,
            )
            if start["status"] == 304:
                body = b""
            elif len(body) >= GZIP_MIN_SIZE:
                body = await _gzip(start, body, accept_encoding)
        else:
            start = with_default(start, b"cache-control", NO_STORE)
        raw_id = (REQUEST_ID_KEY, request_id.encode("ascii"))

        async def send_start(message: Message) -> None:
            message["headers"] = [*message["headers"], raw_id]
            await send(message)

        if self.cors is None:
            await send_start(start)
        else:
            await self.cors.send(start, send=send_start, request_headers=Headers(scope=scope))
        await send({"type": "http.response.body", "body": body})
        status: int = start["status"]
        return status

    async def _serve(self, scope: Scope, receive: Receive, path: str) -> tuple[Message, bytes]:
        """The route's response start and body, or FallThrough."""
        state = scope["app"].state
        session = Session(state.engine)
        link = None
        try:
            if path == LIST_PATH:
                request = Request(scope, receive)
                # Parsed once: the page's links reuse the Request's parse.
                options, flt = list_params(request.query_params)
                body, link = await articles.page_reply(
                    request, session, state.settings, search_cache(state), options, flt
                )
            else:
                article_id = _id(path[len(DETAIL_PREFIX) :])
                body = await articles.article_body(article_id, session)
        finally:
            await close_session(session)
        # The routes' Response(body, media_type=JSON, headers={"Link": ...}) headers, in order.
        headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
        if link is not None:
            headers.insert(0, (b"link", link.encode("latin-1")))
        return {"type": "http.response.start", "status": 200, "headers": headers}, body


async def _problem(
    scope: Scope, render: Callable[[Scope, Send], Awaitable[None]]
) -> tuple[Message, bytes]:
    """A problem response that `render` sends, kept to be finished like any other."""
    assign_id(scope)  # the problem body names the request
    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    await render(scope, collect)
    return sent[0], sent[1]["body"]


async def _gzip(start: Message, body: bytes, accept_encoding: str) -> bytes:
    """What GZipMiddleware (create_app's settings) does to a complete body this large:
    always `Vary: Accept-Encoding`, and compression when the client accepts gzip, off the
    event loop for a body as large as it would move to a thread."""
    if all(k != b"vary" for k, _ in start["headers"]):
        start["headers"].append(_VARY)  # what add_vary_header does with no Vary yet
    else:
        MutableHeaders(scope=start).add_vary_header("Accept-Encoding")
    if "gzip" not in accept_encoding:
        return body
    # mtime=0: the same body compresses to the same bytes, so its strong tag stays true.
    compress = partial(gzip.compress, body, compresslevel=GZIP_LEVEL, mtime=0)
    compressed = await in_thread(compress) if len(body) >= GZIP_THREAD_SIZE else compress()
    headers = MutableHeaders(scope=start)
    headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(compressed))
    return compressed
