"""/v1/changes: the change feed, for clients that keep a copy of the corpus in step."""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import Row
from starlette.responses import Response

from app import schemas
from app.api.deps import SessionDep
from app.api.problems import PROBLEM_RESPONSES
from app.api.responses import json_response
from app.models import MAX_ID
from app.queries import changes as change_queries

router = APIRouter(prefix="/v1/changes", tags=["changes"], responses=PROBLEM_RESPONSES)

After = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_ID,
        description="Return changes with a revision above this; 0 (the default) starts at the "
        "beginning. Pass the previous page's `next_after`.",
        examples=[0],
    ),
]
ChangeLimit = Annotated[
    int, Query(ge=1, le=1000, description="How many changes at most (1 to 1000).", examples=[100])
]


@router.get("", operation_id="list_changes", response_model=schemas.ChangePage)
def list_changes(session: SessionDep, after: After = 0, limit: ChangeLimit = 100) -> Response:
    """Articles inserted, updated or taken down after revision `after`, in revision order.

    An insert or update is the full article plus its `revision` and `deleted: false`; a
    takedown (`corpus delete`) is `{article_id, revision, deleted: true, deleted_at}`:
    remove your copy. Poll with `after=next_after`: a client that does never misses or
    repeats a change, even while an ingest runs. An article changed twice appears once,
    at its newest revision (a takedown and a later return appear both, in order).
    """
    rows = change_queries.list_changes(session, after=after, limit=limit)
    items = [_change(row) for row in rows]
    next_after = items[-1].revision if items else after
    page = schemas.ChangePage.model_construct(items=items, next_after=next_after)
    # Pollers must see new changes at once; the ETag still spares them unchanged bodies.
    return json_response(page, headers={"Cache-Control": "no-cache"})


def _change(row: Row[Any]) -> schemas.ArticleChange | schemas.ArticleDeletion:
    fields = row._mapping
    if fields["deleted"]:
        return schemas.ArticleDeletion(
            article_id=fields["article_id"],
            revision=fields["revision"],
            deleted=True,
            deleted_at=fields["deleted_at"],
        )
    article = {k: v for k, v in fields.items() if k not in ("deleted", "deleted_at")}
    return schemas.ArticleChange(**article, deleted=False)
