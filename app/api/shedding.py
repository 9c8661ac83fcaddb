"""Load shedding for database-bound requests: pure ASGI, one small gate per process.

At most `limit` requests under `/v1/` run at once, which is what the connection pool can
serve; the rest wait in line, and one that waits longer than `queue_timeout_s` gets a fast
503 problem with `Retry-After` rather than a timeout. A request gives its slot back as
soon as its response starts, so a slow reader never keeps another request waiting, and a
request whose client left while it waited is dropped unrun.
"""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import send_problem


class Gate:
    """The slots of one process: shared by this middleware and the fast reads
    (app/api/fastpath.py), which take a slot only when one is free and otherwise leave the
    request to this middleware's queue."""

    def __init__(self, limit: int, queue_timeout_s: float) -> None:
        self.limit = limit
        self.queue_timeout_s = queue_timeout_s
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def semaphore(self) -> asyncio.Semaphore:
        """One semaphore per event loop (tests run one app on several loops)."""
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.limit), loop
        return self._semaphore

    async def try_enter(self) -> bool:
        """Take a slot if one is free, without waiting (acquire never suspends then)."""
        semaphore = self.semaphore()
        if semaphore.locked():
            return False
        return await semaphore.acquire()

    def leave(self) -> None:
        self.semaphore().release()


class LoadSheddingMiddleware:
    def __init__(self, app: ASGIApp, gate: Gate, prefix: str = "/v1/") -> None:
        self.app = app
        self.gate = gate
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        gate = self.gate.semaphore()
        if gate.locked():
            try:
                await asyncio.wait_for(gate.acquire(), self.gate.queue_timeout_s)
            except TimeoutError:
                await send_problem(
                    scope,
                    send,
                    503,
                    "The service is at capacity; retry shortly.",
                    slug="service-unavailable",
                    title="Service unavailable",
                )
                return
            # After a wait, skip the work if the client has gone: a burst's abandoned
            # requests would otherwise delay the next clients' for seconds.
            first = await receive()
            if first["type"] == "http.disconnect":
                gate.release()
                return
            receive = _replaying(first, receive)
        else:
            await gate.acquire()
        held = True

        async def send_releasing(message: Message) -> None:
            nonlocal held
            if held and message["type"] == "http.response.start":
                held = False
                gate.release()
            await send(message)

        try:
            await self.app(scope, receive, send_releasing)
        finally:
            if held:
                gate.release()


def _replaying(first: Message, receive: Receive) -> Receive:
    """`receive`, giving back the message we already took from it first."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
