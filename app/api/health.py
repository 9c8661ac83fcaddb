"""Liveness and readiness probes for orchestrators and load balancers."""

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import Response

from app import schemas
from app.api.calls import run_db
from app.api.deps import SessionDep
from app.api.problems import PROBLEM_RESPONSES
from app.api.responses import json_response

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
    response_model=schemas.Health,
    responses={503: PROBLEM_RESPONSES[503]},
)
async def readyz(session: SessionDep) -> Response:
    """The database answers: 200, else a 503 problem (with Retry-After)."""
    await run_db(session.execute, text("SELECT 1"))
    return json_response(schemas.Health(status="ready"))
