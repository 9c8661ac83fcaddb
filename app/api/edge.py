"""The outermost layer, pure ASGI: the request's id (echoed in the response), its access
line, and the limits no parameter can express, refused before anything else runs.

One layer where there were two (request id, limits): each layer wraps `send` once more
for every request (bench/inprocess.py).
"""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.limits import violation
from app.api.problems import send_problem
from app.api.request_id import REQUEST_ID_KEY, assign_id, log_access


class EdgeMiddleware:
    """The outermost layer: the request's id (echoed in the response), its access line, and
    the limits no parameter can express (app/api/limits.py), refused before anything runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = assign_id(scope)
        raw_id = request_id.encode("ascii")
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before starting a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_KEY, raw_id)]
            await send(message)

        try:
            broken = violation(scope)
            if broken is None:
                await self.app(scope, receive, send_with_id)
            else:
                await send_problem(
                    scope,
                    send_with_id,
                    broken.status,
                    broken.detail,
                    slug=broken.slug,
                    title=broken.title,
                )
        finally:
            log_access(scope, request_id, status, started)
