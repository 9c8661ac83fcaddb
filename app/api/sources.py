"""/v1/sources: publishers with article counts, and the articles of one."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import schemas
from app.api.articles import list_page
from app.api.calls import run_db, run_db_short
from app.api.deps import CacheDep, SessionDep, SettingsDep, SourceId
from app.api.list_query import ListQueryDep, PageRequest
from app.api.problems import PROBLEM_RESPONSES
from app.api.responses import json_response
from app.queries import sources as source_queries

router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=PROBLEM_RESPONSES)


@router.get("", operation_id="list_sources", response_model=schemas.SourcePage)
async def list_sources(session: SessionDep, cache: CacheDep) -> Response:
    """Every source, by id, with its article count."""
    rows = await run_db(source_queries.list_sources, session, cache)
    items = [
        schemas.Source.model_construct(
            source_id=r.source_id, name=r.name, article_count=r.article_count
        )
        for r in rows
    ]
    return json_response(schemas.SourcePage.model_construct(items=items))


@router.get("/{source_id}", operation_id="get_source", response_model=schemas.Source)
async def get_source(source_id: SourceId, session: SessionDep, cache: CacheDep) -> Response:
    """One source with its article count."""
    r = await run_db(source_queries.get_source, session, source_id, cache)
    return json_response(
        schemas.Source.model_construct(
            source_id=r.source_id, name=r.name, article_count=r.article_count
        )
    )


@router.get(
    "/{source_id}/articles",
    operation_id="list_source_articles",
    response_model=schemas.ArticlePage,
)
async def list_source_articles(
    request: Request,
    source_id: SourceId,
    session: SessionDep,
    settings: SettingsDep,
    cache: CacheDep,
    query: ListQueryDep,
) -> Response:
    """The articles of one source: the same parameters (but `source_id`) and page shape as
    `list_articles`."""
    options = query.options((source_id,))
    await run_db_short(session, source_queries.ensure_source_exists, session, source_id)
    return await list_page(PageRequest(request, session, settings, cache, options))
