"""Liveness and readiness probes for orchestrators and load balancers."""

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from app import schemas
from app.api.calls import run_db
from app.api.deps import SessionDep
from app.api.problems import PROBLEM_RESPONSES
from app.api.responses import json_response
from app.search.sync import Follower, IndexStatus
from app.search.vector_sync import VectorFollower

router = APIRouter(tags=["health"])
# Never cached: a probe must see the process and the database as they are now.
PROBE_PATHS = ("/healthz", "/readyz")


@router.get("/healthz", operation_id="get_health", response_model=schemas.Health)
async def healthz() -> Response:
    """The process is alive. Touches nothing else."""
    return json_response(schemas.Health(status="ok"))


@router.get(
    "/readyz",
    operation_id="get_readiness",
    response_model=schemas.Readiness,
    responses={503: PROBLEM_RESPONSES[503]},
)
async def readyz(request: Request, session: SessionDep) -> Response:
    """The database answers: 200, else a 503 problem (with Retry-After). `search_index`
    says whether searches are served yet (lists and details never wait for the index)."""
    await run_db(session.execute, text("SELECT 1"))
    follower: Follower | None = getattr(request.app.state, "follower", None)
    vectors: VectorFollower | None = getattr(request.app.state, "vector_follower", None)
    index = None if follower is None else _state(follower.status())
    vector_index = None if vectors is None else _state(vectors.status())
    return json_response(
        schemas.Readiness(status="ready", search_index=index, vector_index=vector_index)
    )


def _state(status: IndexStatus) -> schemas.IndexState:
    return schemas.IndexState(
        state="ready" if status.ready else "building",
        revision=status.index_revision,
        database_revision=status.database_revision,
        writer=status.following,
    )
