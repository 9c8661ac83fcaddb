"""HEAD: every GET route answers it with the headers a GET would get, and no body. Pure
ASGI, inside the API key check and outside gzip and the validators.

The request goes on as a GET (a copy of the scope), so routing, validators, gzip and
every route treat it as one and the headers come out the same, Content-Length and ETag
included; the body is dropped on the way out. Routes that stream a body they would have
to compute (the exports) ask `is_head` and skip the work.
"""

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEAD_KEY = "head_request"


def is_head(request: Request) -> bool:
    """Whether `request` came in as HEAD (it reaches the route as a GET)."""
    state = request.scope.get("state")
    return isinstance(state, dict) and state.get(_HEAD_KEY) is True


class HeadMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[_HEAD_KEY] = True  # shared with the copy below
        as_get = {**scope, "method": "GET"}

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(as_get, receive, send_headers)
