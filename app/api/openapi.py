"""The OpenAPI document clients generate SDKs from: FastAPI's, completed with what our ASGI
middleware adds (validators, 304, 414, 503, headers) and with every error as `Problem`.

Built once per app and cached. `openapi.json` at the repository root is this document,
committed (`make openapi`), and tests/test_openapi.py fails when the two disagree.
"""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import schemas
from app.api.auth import API_KEY_HEADER
from app.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
NO_DATABASE_PATHS = frozenset({"/healthz"})

_STRING = {"type": "string"}
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "Strong validator of this representation; send it in If-None-Match.",
        "schema": _STRING,
    },
    "Cache-Control": {"description": "How long caches may reuse the response.", "schema": _STRING},
    "X-Request-ID": {
        "description": "The request's id (the client's own when it sent a sane one).",
        "schema": _STRING,
    },
}
LINK_HEADER = {
    "description": 'RFC 8288 links to the neighbouring pages (rel="next", rel="prev").',
    "schema": _STRING,
}
RETRY_AFTER_HEADER = {"description": "Seconds to wait before retrying.", "schema": _STRING}
RATE_LIMIT_RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Policy": {
        "description": 'With API keys on: the key\'s quota, e.g. `"key";q=600;w=60` (600 '
        "requests per 60 s), as draft-ietf-httpapi-ratelimit-headers defines it.",
        "schema": _STRING,
    },
    "RateLimit": {
        "description": 'With API keys on: what is left, e.g. `"key";r=599;t=42` (599 '
        "requests, the window starts again in 42 s).",
        "schema": _STRING,
    },
}
# Generated SDKs send a key when the document declares how: either scheme will do.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as `Authorization: Bearer KEY` (servers with "
        "CORPUS_AUTH=keys; `corpus keys create` makes one).",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": f"An API key as `{API_KEY_HEADER}: KEY`; clients that cannot set "
        "headers may send `api_key=KEY` in the query string.",
    },
}
KEYED_PREFIX = "/v1"
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags of copies the client holds: a match gets 304 with no body.",
    "schema": {"type": "string", "maxLength": 1024},
    "example": '"0f3c7ad1c2b74e0e9d6a4e3b2f1c0d9e"',
}


def _problem(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }
    if headers:
        response["headers"] = headers
    return response


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add what FastAPI cannot see; drop its default validation-error schemas."""
    schemas_ = document.setdefault("components", {}).setdefault("schemas", {})
    problem = schemas.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas_.update(problem.pop("$defs", {}))
    schemas_["Problem"] = problem
    for name in ("HTTPValidationError", "ValidationError"):
        schemas_.pop(name, None)
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            _complete_operation(path, method, operation)
            operation["responses"] = dict(sorted(operation["responses"].items()))
    return document


def _complete_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in responses.items():
        if status.startswith(("4", "5")):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
    responses.setdefault(
        "400", _problem("Bad request: a query string that is not UTF-8 or has control characters.")
    )
    responses["414"] = _problem("The query string is too long or has too many parameters.")
    responses["431"] = _problem("The request headers are too many or too large.")
    if path not in NO_DATABASE_PATHS:
        responses["503"] = _problem(
            "The database is unreachable, slow or saturated, or the service is shedding "
            "load; retry after `Retry-After` seconds.",
            **{"Retry-After": RETRY_AFTER_HEADER},
        )
    else:
        responses.pop("503", None)
    keyed = path == KEYED_PREFIX or path.startswith(KEYED_PREFIX + "/")
    if keyed:
        _complete_keyed(operation)
    if method != "get":
        return
    ok = responses.get("200", {})
    content = ok.get("content", {})
    if "application/json" not in content:
        # Streamed (exports): no validator, so no 304 and no If-None-Match.
        ok["headers"] = {"X-Request-ID": RESPONSE_HEADERS["X-Request-ID"]}
        return
    headers = dict(RESPONSE_HEADERS)
    if keyed:
        headers.update(RATE_LIMIT_RESPONSE_HEADERS)
    if content["application/json"].get("schema", {}).get("$ref", "").endswith("/ArticlePage"):
        headers["Link"] = LINK_HEADER
    ok["headers"] = headers
    responses["304"] = {
        "description": "Not modified: the If-None-Match tag still matches; no body.",
        "headers": {k: RESPONSE_HEADERS[k] for k in ("ETag", "Cache-Control", "X-Request-ID")},
    }
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    if all(p.get("name") != IF_NONE_MATCH["name"] for p in parameters):
        parameters.append(dict(IF_NONE_MATCH))


def _complete_keyed(operation: dict[str, Any]) -> None:
    """What API keys add to a /v1 operation: its security, and its 401 and 429."""
    # Either scheme; `{}`: a server with keys off (the default) needs none.
    operation["security"] = [{name: []} for name in SECURITY_SCHEMES] + [{}]
    responses = operation["responses"]
    responses["401"] = _problem(
        "With API keys on: no key, or one that is unknown, revoked or expired (the problem's "
        "`type` says which).",
        **{"WWW-Authenticate": {"description": "`Bearer`: send a key.", "schema": _STRING}},
    )
    responses["429"] = _problem(
        "With API keys on: the key is over its rate, or this address sent too many failed "
        "keys; retry after `Retry-After` seconds.",
        **{"Retry-After": RETRY_AFTER_HEADER, **RATE_LIMIT_RESPONSE_HEADERS},
    )


def render(app: FastAPI) -> str:
    """The document as committed in openapi.json: sorted keys, two-space indent, final newline."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with the completed, cached document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
