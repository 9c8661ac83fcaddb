"""Liveness and readiness probes for orchestrators and load balancers."""

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import schemas
from app.api.calls import run_db
from app.api.deps import SessionDep, SettingsDep
from app.api.problems import PROBLEM_RESPONSES
from app.api.responses import json_response
from app.errors import ServiceUnavailable
from app.queries import replication
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
async def readyz(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The database answers: 200, else a 503 problem (with Retry-After), also when it is a
    replica further behind than CORPUS_REPLICA_MAX_LAG_S. `database` says whether it is a
    replica and its lag; `search_index` and `vector_index` whether searches (by words, by
    meaning) are served yet (lists and details never wait for either index)."""
    state = await run_db(replication.database_state, session)
    database = _database(state, settings.replica_max_lag_s)
    follower: Follower | None = getattr(request.app.state, "follower", None)
    vectors: VectorFollower | None = getattr(request.app.state, "vector_follower", None)
    index = _index(follower.status()) if follower is not None else None
    vector_index = _index(vectors.status()) if vectors is not None else None
    return json_response(
        schemas.Readiness(
            status="ready", database=database, search_index=index, vector_index=vector_index
        )
    )


def _database(state: replication.DatabaseState, max_lag_s: float | None) -> schemas.DatabaseState:
    """What /readyz says of the database; ServiceUnavailable for a replica too far behind."""
    if max_lag_s is not None and state.lag_s is not None and state.lag_s > max_lag_s:
        raise ServiceUnavailable(
            f"The database is a replica {state.lag_s:.1f} s behind its primary "
            f"(more than {max_lag_s:g} s)."
        )
    return schemas.DatabaseState(replica=state.replica, lag_s=state.lag_s)


def _index(status: IndexStatus) -> schemas.IndexState:
    return schemas.IndexState(
        state="ready" if status.ready else "building",
        revision=status.index_revision,
        database_revision=status.database_revision,
        writer=status.following,
    )
