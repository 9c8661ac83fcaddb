"""The two hottest reads, answered by plain Starlette endpoints just inside our middleware.

`GET /v1/articles` (lists and searches) and `GET /v1/articles/{article_id}` are most of a
client's traffic, and FastAPI's per-request work for a route (solving its dependencies,
reading each parameter, rendering through the response model) costs more than the
indexed read behind them (bench/inprocess.py, bench/list_api.py). So does the way to a
route: FastAPI's exception layer, its exit-stack layer and its router cost ~20 µs a request
before any route runs. create_app therefore installs `FastReads` as the innermost of our
middleware: it matches these two routes and runs their endpoints under an exception layer
of its own with the app's handlers; everything else goes on to FastAPI.

Every response still passes the same middleware (request id, limits, load shedding,
validators, gzip, CORS, keys), and errors are rendered by the same handlers as FastAPI's
routes (problems.py). The endpoints read their parameters with the routes' own definitions
(`ArticleListQuery` in list_query.py, `ArticleId` in deps.py), call the functions the routes
of articles.py call, and raise the same errors. The FastAPI routes remain the documented
API (OpenAPI) and serve every request when `fast_reads` is off; tests/test_fastpath.py
checks that both answer alike, headers included.
"""

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter
from sqlmodel import Session
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

from app.api import articles
from app.api.deps import ArticleId, close_session, search_cache
from app.api.list_query import ArticleListQuery, PageRequest, read_path, read_query
from app.api.parameters import check_known
from app.api.responses import json_bytes_response

LIST_PATH = "/v1/articles"
_ARTICLE_ID: TypeAdapter[int] = TypeAdapter(ArticleId)


async def list_articles(request: Request) -> Response:
    """As articles.list_articles."""
    query = read_query(ArticleListQuery, request.query_params)
    state = request.app.state
    session = Session(state.engine)
    try:
        options = query.options(query.source_id)
        page = PageRequest(request, session, state.settings, search_cache(state), options)
        return await articles.list_page(page)
    finally:
        await close_session(session)


async def get_article(request: Request) -> Response:
    """As articles.get_article."""
    check_known(request.query_params.keys(), frozenset())
    article_id = read_path(_ARTICLE_ID, "article_id", request.path_params["article_id"])
    session = Session(request.app.state.engine)
    try:
        body = await articles.article_body(article_id, session)
    finally:
        await close_session(session)
    return json_bytes_response(body)


def routes() -> list[Route]:
    """The fast routes, matched as FastAPI's router would match its routes of these paths."""
    found = [
        Route(LIST_PATH, list_articles, methods=["GET"], include_in_schema=False),
        Route(LIST_PATH + "/{article_id}", get_article, methods=["GET"], include_in_schema=False),
    ]
    for route in found:
        # Starlette adds HEAD to a GET route; the FastAPI routes they stand for answer GET
        # only (the reply layer has made a HEAD a GET by now).
        route.methods = {"GET"}
    return found


class FastReads:
    """The innermost of our middleware: a request for a fast route is answered here, under
    Starlette's exception layer with `handlers` (the app's, as FastAPI's own exception
    layer holds them: the 500 handler is the outermost layer's); any other goes on."""

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, ExceptionHandler]) -> None:
        self.app = app
        self.routes = routes()
        # Read when the stack is built (the first request), once every handler is added.
        kept = {key: h for key, h in handlers.items() if key not in (500, Exception)}
        self.handled = ExceptionMiddleware(_respond, handlers=kept)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    await self.handled(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _respond(scope: Scope, receive: Receive, send: Send) -> None:
    """The matched endpoint's response (Starlette's `request_response`, without a second
    exception layer: the one around this already renders what the endpoint raises)."""
    response = await scope["endpoint"](Request(scope, receive, send))
    await response(scope, receive, send)
