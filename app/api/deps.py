"""Shared dependencies and parameter types for the routers.

Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
threadpool, and each such hop cost more than the query behind a page (bench/list_api.py).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlmodel import Session
from starlette.datastructures import State

from app.api.calls import in_thread
from app.errors import InvalidParameter, SearchIndexBuilding, ServiceUnavailable
from app.queries.articles import ArticleFilter, Content, Sort
from app.queries.cache import RevisionCache
from app.queries.counts import CountMode, Facet
from app.queries.search import MAX_QUERY_CHARS
from app.search.index import SearchIndex
from app.search.sync import Follower
from app.settings import Settings

MAX_ID = 2**63 - 1
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_CURSOR_CHARS = 2048
MAX_SOURCE_IDS = 100


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
Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"How many items per page (1 to {MAX_LIMIT}).",
        examples=[20],
    ),
]
CursorParam = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        description="Opaque cursor from a previous page's `next` or `prev` link.",
        examples=[
            "KTpfHcpDcNaYWrkqW1swLjM5NTQ4NDA0NjkzMzM3NjQsNDNdLCJhIiwiMzYyZGY5ZTExYTQ1Zjc4MiJd"
        ],
    ),
]
SourceIds = Annotated[
    list[Annotated[int, Query(ge=1, le=MAX_ID)]],
    Query(
        max_length=MAX_SOURCE_IDS,
        description=(
            "Only articles from these sources; repeat for several (`?source_id=2&source_id=5`)."
        ),
        examples=[[2]],
    ),
]


# -- List options: shared by /v1/articles and /v1/sources/{id}/articles ----------------------

MAX_IDS = 100
MAX_IDS_CHARS = MAX_IDS * 21
MAX_FIELDS_CHARS = 200
MAX_FACETS = 5
LIST_FIELDS = frozenset(
    {"article_id", "source_id", "title", "excerpt", "content", "word_count", "score", "snippet"}
)

Q = Annotated[
    str | None,
    Query(
        max_length=MAX_QUERY_CHARS,
        description=(
            'Full-text search over title and content. Words are ANDed; `"a phrase"`, '
            "`-word` excludes, `OR` between two items. Blank means no search. "
            f"At most {MAX_QUERY_CHARS} characters."
        ),
        examples=['palmyra "islamic state" -video'],
    ),
]
IdMin = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="Smallest article_id to include (inclusive).", examples=[1]),
]
IdMax = Annotated[
    int | None,
    Query(
        ge=1, le=MAX_ID, description="Largest article_id to include (inclusive).", examples=[200000]
    ),
]
IdsParam = Annotated[
    str | None,
    Query(
        max_length=MAX_IDS_CHARS,
        description=f"Only these article ids, comma-separated (at most {MAX_IDS}).",
        examples=["166812,7,14"],
    ),
]
SortParam = Annotated[
    Sort | None,
    Query(
        description=(
            "Order: `-article_id` (default), `article_id`, `title`, `-title` (code-point "
            "order), or `relevance` (default with `q`). Ties go by article_id."
        ),
        examples=["-article_id"],
    ),
]
FieldsParam = Annotated[
    str | None,
    Query(
        max_length=MAX_FIELDS_CHARS,
        description=(
            "Comma-separated item fields to return, from: " + ", ".join(sorted(LIST_FIELDS)) + "."
        ),
        examples=["article_id,title"],
    ),
]
ContentParam = Annotated[
    Content,
    Query(
        description="How much body items carry: none, excerpt (default) or full content.",
        examples=["excerpt"],
    ),
]
CountParam = Annotated[
    CountMode,
    Query(
        description=(
            "Add `total`: none (default), exact, or estimated (PostgreSQL's planner "
            "estimate; exact on SQLite). `total_is_exact` says which it is."
        ),
        examples=["exact"],
    ),
]
FacetParam = Annotated[
    list[Facet],
    Query(
        max_length=MAX_FACETS,
        description="Add `facets` with match counts per value; only `source_id` exists.",
        examples=[["source_id"]],
    ),
]


def parse_ids(ids: str | None) -> tuple[int, ...]:
    if ids is None or not ids.strip():
        return ()
    try:
        values = {int(part) for part in ids.split(",") if part.strip()}
    except ValueError:
        raise InvalidParameter("ids must be comma-separated integers.", parameter="ids") from None
    if len(values) > MAX_IDS:
        raise InvalidParameter(f"At most {MAX_IDS} ids per request.", parameter="ids")
    if any(not 1 <= v <= MAX_ID for v in values):
        raise InvalidParameter(f"Each id must be between 1 and {MAX_ID}.", parameter="ids")
    return tuple(sorted(values))


def parse_fields(fields: str | None) -> frozenset[str] | None:
    if fields is None:
        return None
    names = {name.strip() for name in fields.split(",") if name.strip()}
    unknown = names - LIST_FIELDS
    if unknown or not names:
        raise InvalidParameter(
            f"Unknown field(s): {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {', '.join(sorted(LIST_FIELDS))}.",
            parameter="fields",
        )
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class ListOptions:
    """Everything a list of articles takes besides its source filter."""

    flt: ArticleFilter
    sort: Sort | None
    limit: int
    cursor: str | None
    fields: frozenset[str] | None
    content: Content
    count: CountMode
    facets: list[Facet]


async def list_options(
    q: Q = None,
    id_min: IdMin = None,
    id_max: IdMax = None,
    ids: IdsParam = None,
    sort: SortParam = None,
    fields: FieldsParam = None,
    content: ContentParam = Content.EXCERPT,
    count: CountParam = CountMode.NONE,
    facet: FacetParam = [],  # noqa: B006 - FastAPI copies defaults per request
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> ListOptions:
    flt = ArticleFilter(id_min=id_min, id_max=id_max, ids=parse_ids(ids), q=q)
    return ListOptions(
        flt, sort, limit, cursor, parse_fields(fields), content, count, list(dict.fromkeys(facet))
    )


ListOptionsDep = Annotated[ListOptions, Depends(list_options)]


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
