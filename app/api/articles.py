"""/v1/articles: keyset pages of summaries, and one article in full."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import schemas
from app.api.deps import ArticleId, CursorParam, Limit, SessionDep, SettingsDep, SourceIds
from app.api.pagination import link_header, page_links
from app.api.problems import PROBLEM_RESPONSES
from app.api.responses import json_response
from app.queries import articles as article_queries
from app.queries import cursor as cursors
from app.queries.articles import ArticleFilter, Page, Sort

router = APIRouter(prefix="/v1/articles", tags=["articles"], responses=PROBLEM_RESPONSES)


def list_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    flt: ArticleFilter,
    limit: int,
    cursor: str | None,
    sort: Sort = Sort.NEWEST,
) -> Response:
    """Shared by every list of articles: decode the cursor, fetch, link the neighbours."""
    fingerprint = cursors.fingerprint("articles", sort.value, *flt.fingerprint_parts())
    given = None
    if cursor is not None:
        given = cursors.decode(
            cursor,
            settings.cursor_secret,
            expected_fingerprint=fingerprint,
            key_arity=article_queries.key_arity(sort),
        )
    page: Page = article_queries.list_articles(session, flt, sort=sort, limit=limit, cursor=given)
    next_url, prev_url = page_links(request, page, given, fingerprint, settings.cursor_secret)
    body = schemas.ArticlePage.model_construct(
        items=[
            schemas.ArticleSummary.model_construct(
                article_id=row.article_id,
                source_id=row.source_id,
                title=row.title,
                excerpt=article_queries.excerpt(row.excerpt),
            )
            for row in page.rows
        ],
        next=next_url,
        prev=prev_url,
    )
    link = link_header(next_url, prev_url)
    return json_response(body, headers={"Link": link} if link else None)


@router.get("", operation_id="list_articles", response_model=schemas.ArticlePage)
def list_articles(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    source_id: SourceIds = [],  # noqa: B006 - FastAPI copies defaults per request
    limit: Limit = 20,
    cursor: CursorParam = None,
) -> Response:
    """Articles, newest `article_id` first, one keyset page at a time.

    Follow `next` (or the `Link` header) to walk forward and `prev` to walk back; the cursor
    in those URLs is opaque and only valid with the same filters.
    """
    flt = ArticleFilter(source_ids=tuple(source_id))
    return list_page(request, session, settings, flt, limit, cursor)


@router.get("/{article_id}", operation_id="get_article", response_model=schemas.Article)
def get_article(article_id: ArticleId, session: SessionDep) -> Response:
    """One article, its content byte for byte as ingested."""
    row = article_queries.get_article(session, article_id)
    return json_response(schemas.Article.model_validate(row, from_attributes=True))
