"""Shared dependencies and parameter types for the routers (the list's query parameters
are in list_query.py).

Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
threadpool, a thread hop per request that the request does not need.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlmodel import Session
from starlette.datastructures import State

from app.api.calls import in_thread
from app.errors import InvalidParameter, SearchIndexBuilding, ServiceUnavailable
from app.models import MAX_ID
from app.queries.cache import RevisionCache
from app.queries.semantic import Meaning
from app.search.embedder import Embedder
from app.search.index import SearchIndex
from app.search.sync import Follower
from app.search.vector_sync import VectorFollower
from app.settings import Settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A Session for one request. Making one does no I/O (it connects on first use).

    Closing one that used a connection ends its transaction: a network round trip on
    PostgreSQL, so that runs in the threadpool; on SQLite, ending a read transaction is an
    in-process call of microseconds that never waits for a lock, cheaper than a thread hop.
    """
    session = Session(request.app.state.engine)
    try:
        yield session
    finally:
        await close_session(session)


async def close_session(session: Session) -> None:
    """Close `session` where it is cheapest: see get_session."""
    if not session.in_transaction():
        return  # no transaction, no connection: nothing to give back
    if session.get_bind().dialect.name != "sqlite":
        await in_thread(session.close)
    else:
        session.close()


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the connection goes back to the pool before a slow client reads the body.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]

ArticleId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="The corpus's own article id.", examples=[166812])
]
SourceId = Annotated[int, Path(ge=1, le=MAX_ID, description="A source id.", examples=[2])]


def search_cache(state: State) -> RevisionCache:
    """One cache per app, made on first use (the app factory need not know about it)."""
    cache: RevisionCache | None = getattr(state, "search_cache", None)
    if cache is None:
        cache = state.search_cache = RevisionCache()
    return cache


async def get_search_cache(request: Request) -> RevisionCache:
    return search_cache(request.app.state)


CacheDep = Annotated[RevisionCache, Depends(get_search_cache)]


def search_index(state: State) -> SearchIndex:
    """The index searches read, once it has caught up with the database as it was when
    this process started; until then SearchIndexBuilding, saying how far it has got."""
    follower: Follower | None = getattr(state, "follower", None)
    if follower is None:
        raise ServiceUnavailable("Search is not available: this process follows no index.")
    status = follower.status()
    if not status.ready or follower.index is None:
        raise SearchIndexBuilding(
            f"The search index is being built: revision {status.index_revision} of "
            f"{status.database_revision}; retry shortly."
        )
    return follower.index


def meaning_view(state: State) -> Meaning:
    """One view of the vector index for a search by meaning, with this process's embedder:
    InvalidParameter when search by meaning is off here, SearchIndexBuilding until the
    vector index has caught up (or been rebuilt for this embedder)."""
    embedder: Embedder | None = getattr(state, "embedder", None)
    follower: VectorFollower | None = getattr(state, "vector_follower", None)
    if embedder is None or follower is None:
        raise InvalidParameter(
            "Search by meaning is off on this server (CORPUS_EMBEDDER=none): use mode=keyword.",
            parameter="mode",
        )
    status = follower.status()
    index = follower.index
    view = index.view() if index is not None else None
    # Another process on this host may be rebuilding the folder for another embedder.
    if not status.ready or view is None or view.meta.embedder != embedder.name:
        raise SearchIndexBuilding(
            f"The vector index is being built: revision {status.index_revision} of "
            f"{status.database_revision}; retry shortly."
        )
    return Meaning(view, embedder)
