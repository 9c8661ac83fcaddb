"""The one place errors become RFC 9457 `application/problem+json` bodies.

`install(app)` maps domain errors, validation errors, Starlette's HTTP errors (unknown
routes, wrong methods) and database outages; anything else is a logged, bodiless-of-detail
500. No response ever carries a traceback.
"""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope, Send

from app.api.request_id import REQUEST_ID_HEADER, request_id_of
from app.errors import CorpusError, InvalidParameter, ServiceUnavailable, UnknownParameter

log = logging.getLogger("app.problems")

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_S = 2
# Lost or unreachable databases, timeouts and a full pool are outages (503). Any other
# DBAPIError (bad data, a constraint) is our bug, and a 500 says so.
DATABASE_OUTAGES = (OperationalError, PoolTimeoutError, InterfaceError)
DATABASE_UNAVAILABLE = "The database is unreachable or busy; retry shortly."


def _problem_response(description: str) -> dict[str, Any]:
    # No "model" key: FastAPI would add an application/json entry that we never send.
    # app/api/openapi.py registers the Problem schema this $ref points to.
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_response(
        "Bad request: an unknown query parameter (`errors` names it), or a cursor that does "
        "not parse or does not fit."
    ),
    404: _problem_response("No such resource."),
    422: _problem_response("A parameter is invalid; `errors` names each one."),
    503: _problem_response(
        "The database is unreachable, slow or saturated, or the service is shedding load; "
        "retry after `Retry-After` seconds."
    ),
}
# Routes that name one article: a taken-down one answers 410 with its `deleted_at`.
GONE_RESPONSES: dict[int | str, dict[str, Any]] = {
    410: _problem_response("The article was taken down; `deleted_at` says when."),
}


def problem_body(
    status: int,
    detail: str,
    *,
    instance: str,
    title: str | None = None,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    request_id: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> bytes:
    """The JSON bytes of a problem: shared by the handlers below and the ASGI middleware."""
    body: dict[str, Any] = {
        "type": f"urn:article-corpus:problem:{slug}" if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    if request_id is not None:
        body["request_id"] = request_id
    if extensions:
        body |= extensions
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


async def send_problem(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    *,
    slug: str,
    title: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A problem sent from ASGI middleware, outside FastAPI's handlers (e.g. load shedding),
    with any `headers` the answer needs (e.g. WWW-Authenticate)."""
    body = problem_body(
        status,
        detail,
        instance=scope.get("path", ""),
        title=title,
        slug=slug,
        request_id=request_id_of(scope),
    )
    fields = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    if status == 503:
        fields.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    body = problem_body(
        status,
        detail,
        instance=request.url.path,
        title=title,
        slug=slug,
        errors=errors,
        request_id=request_id_of(request.scope),
        extensions=extensions,
    )
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        errors.append(
            {
                "location": loc[0] if loc else "request",
                "name": loc[1] if len(loc) > 1 else "",
                "message": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return errors


def install(app: FastAPI) -> None:
    """Register every handler: called once from create_app."""

    async def on_corpus_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CorpusError)
        errors = None
        if isinstance(exc, InvalidParameter):
            errors = [
                {
                    "location": "query",
                    "name": exc.parameter,
                    "message": exc.detail,
                    "type": "value_error",
                }
            ]
        elif isinstance(exc, UnknownParameter):
            errors = [
                {
                    "location": "query",
                    "name": name,
                    "message": "Unknown parameter" + (f"; did you mean {hint!r}?" if hint else "."),
                    "type": "unknown_parameter",
                    **({"suggestion": hint} if hint else {}),
                }
                for name, hint in exc.suggestions.items()
            ]
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else None
        return problem(
            request,
            exc.status,
            exc.detail,
            title=exc.title,
            slug=exc.slug,
            errors=errors,
            headers=headers,
            extensions=exc.extensions(),
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        names = ", ".join(sorted({e["name"] for e in errors if e["name"]})) or "the request"
        return problem(
            request,
            422,
            f"Invalid parameter: {names}.",
            title="Invalid parameter",
            slug="invalid-parameter",
            errors=errors,
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.url.path}."
        headers = dict(exc.headers or {})
        allow = [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
        if "GET" in allow and "HEAD" not in allow:
            headers["Allow"] = ", ".join([*allow, "HEAD"])  # app/api/head.py answers it
        return problem(request, exc.status_code, detail, headers=headers)

    async def on_database_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", type(exc).__name__)
        err = ServiceUnavailable(DATABASE_UNAVAILABLE)
        return await on_corpus_error(request, err)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        request_id = request_id_of(request.scope)
        log.exception(
            "unhandled error on %s %s",
            request.method,
            request.url.path,
            extra={"request_id": request_id},
        )
        # Starlette sends this from outside our middleware, so the id header goes on here.
        headers = {"Cache-Control": "no-store"}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return problem(
            request, 500, "An unexpected error occurred; it has been logged.", headers=headers
        )

    app.add_exception_handler(CorpusError, on_corpus_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, on_database_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
