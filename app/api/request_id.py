"""Request ids and the access log, for the outermost layer (app/api/edge.py), so every
response and access line has one.

A client's `X-Request-ID` is kept when it is sane (1-128 of `A-Za-z0-9._-`), so ids can be
followed across services; anything else is replaced by 32 fresh random hex digits. The id
is echoed in the response, stored in `scope["state"]` for problem bodies, and written on
the access line with method, path, status and duration.
"""

import logging
import os
import re
import time

from starlette.types import Scope

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")

access_log = logging.getLogger("app.access")


def request_id_of(scope: Scope) -> str | None:
    """The id this middleware gave the request, if it ran."""
    state = scope.get("state")
    request_id = state.get("request_id") if isinstance(state, dict) else None
    return request_id if isinstance(request_id, str) else None


def _choose_id(scope: Scope) -> str:
    """The client's id when sane, else a fresh one."""
    for key, value in scope["headers"]:
        if key == REQUEST_ID_KEY and _SANE_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return os.urandom(16).hex()  # as random as uuid4's hex, at a quarter of its cost


def assign_id(scope: Scope) -> str:
    """Choose the request's id and store it where problem bodies and the error handler
    look for it."""
    request_id = _choose_id(scope)
    # In place, not a copy: Starlette's outermost error handler reads the same dict.
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


def log_access(scope: Scope, request_id: str, status: int, started: float) -> None:
    """The access line of a request that began at `started` (perf_counter)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %d",
            scope["method"],
            scope["path"],
            status,
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
