"""Shared dependencies and parameter types for the routers."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlmodel import Session

from app.settings import Settings

MAX_ID = 2**63 - 1


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the connection goes back to the pool before a slow client reads the body.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]

ArticleId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="The corpus's own article id.", examples=[166812])
]
SourceId = Annotated[int, Path(ge=1, le=MAX_ID, description="A source id.", examples=[2])]
Limit = Annotated[
    int, Query(ge=1, le=100, description="How many items per page (1 to 100).", examples=[20])
]
CursorParam = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="Opaque cursor from a previous page's `next` or `prev` link.",
    ),
]
SourceIds = Annotated[
    list[Annotated[int, Query(ge=1, le=MAX_ID)]],
    Query(
        max_length=100,
        description=(
            "Only articles from these sources; repeat for several (`?source_id=2&source_id=5`)."
        ),
        examples=[[2]],
    ),
]
