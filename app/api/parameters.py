"""Query parameters a route does not take: a 400 problem that names each one and suggests
the known parameter it may have meant (`?search=` → `q`), never a silent unfiltered answer.

What a route takes is read from its own declarations: the fields of its query models
(list_query.py) and its single query parameters, as FastAPI sees them for its routes and
as the fast routes read them (fastpath.py). A parameter added there is known here at once.
Parameters starting with `_` (cache busters) and `api_key` (app/api/auth.py) are always
allowed, and never echoed in links (pagination.py).
"""

import difflib
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request

from app.api.auth import API_KEY_PARAMETER
from app.errors import UnknownParameter

IGNORED_PREFIX = "_"
# What people bring from other APIs, suggested when the route takes the parameter meant.
SYNONYMS = {
    "search": "q",
    "query": "q",
    "text": "q",
    "source": "source_id",
    "sources": "source_id",
    "page": "cursor",
    "offset": "cursor",
    "after": "cursor",
    "per_page": "limit",
    "page_size": "limit",
    "size": "limit",
    "count_only": "count",
    "order": "sort",
    "order_by": "sort",
    "id": "ids",
    "article_id": "ids",
}


def is_passed_over(name: str) -> bool:
    """Allowed on every route and never echoed: cache busters and the API key."""
    return name.startswith(IGNORED_PREFIX) or name == API_KEY_PARAMETER


def check_known(names: Iterable[str], known: frozenset[str]) -> None:
    """UnknownParameter naming every one of `names` that is not `known`."""
    unknown = [n for n in dict.fromkeys(names) if n not in known and not is_passed_over(n)]
    if unknown:
        raise UnknownParameter({name: suggestion(name, known) for name in unknown})


def suggestion(name: str, known: frozenset[str]) -> str | None:
    """The known parameter `name` most likely meant, if any is close."""
    meant = SYNONYMS.get(name.lower())
    if meant in known:
        return meant
    close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


@cache
def model_parameters(model: type[BaseModel]) -> frozenset[str]:
    """The query parameters a query model declares: its fields, by alias where one is set."""
    return frozenset(field.alias or name for name, field in model.model_fields.items())


# By endpoint function: the same in every app that routes to it (routes are not hashable).
_ROUTE_PARAMETERS: dict[Callable[..., Any], frozenset[str]] = {}


def route_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameters a FastAPI route takes, its dependencies' and models' included."""
    found = _ROUTE_PARAMETERS.get(route.endpoint)
    if found is not None:
        return found
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        for field in dependant.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                names |= model_parameters(annotation)
            else:
                names.add(field.alias)
        pending.extend(dependant.dependencies)
    found = _ROUTE_PARAMETERS[route.endpoint] = frozenset(names)
    return found


async def known_parameters(request: Request) -> None:
    """A router dependency: refuse the query parameters the matched route does not take."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        check_known(request.query_params.keys(), route_parameters(route))
