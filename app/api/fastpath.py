"""The two hottest reads as plain Starlette routes, ahead of FastAPI's routes for them.

`GET /v1/articles` (lists and searches) and `GET /v1/articles/{article_id}` are most of a
client's traffic, and FastAPI's per-request work for a route (solving its dependencies,
reading each parameter, rendering through the response model) costs more than the
indexed read behind them (bench/inprocess.py, bench/list_api.py). create_app therefore
puts these two routes ahead of the FastAPI routes of the same paths.

They are ordinary routes inside the one middleware stack, so every response gets the same
request id, limits, load shedding, validators, gzip and CORS. They read their parameters
with the routes' own definitions (`ArticleListQuery` in list_query.py, `ArticleId` in
deps.py), call the functions the routes of articles.py call, and raise the same errors,
which problems.py renders. The FastAPI routes remain the documented API (OpenAPI) and
serve every request when `fast_reads` is off; tests/test_fastpath.py checks that both
answer alike, headers included.
"""

from pydantic import TypeAdapter
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

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


def routes() -> list[BaseRoute]:
    """The fast routes, to be matched before the FastAPI routes of the same paths."""
    found: list[BaseRoute] = [
        Route(LIST_PATH, list_articles, methods=["GET"], include_in_schema=False),
        Route(LIST_PATH + "/{article_id}", get_article, methods=["GET"], include_in_schema=False),
    ]
    for route in found:
        # Starlette adds HEAD to a GET route; the FastAPI routes they stand for answer GET only.
        assert isinstance(route, Route)
        route.methods = {"GET"}
    return found
