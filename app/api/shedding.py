"""Load shedding for database-bound requests: one small gate per process, which the reply
layer (app/api/replies.py) holds each request under `/v1/` to.

At most `limit` requests under `/v1/` run at once, which is what the connection pool can
serve; the rest wait in line, and one that waits longer than `queue_timeout_s` gets a fast
503 problem with `Retry-After` rather than a timeout. A request gives its slot back as
soon as its response starts, so a slow reader never keeps another request waiting, and a
request whose client left while it waited is dropped unrun.
"""

import asyncio
import enum

from starlette.types import Message, Receive, Scope, Send

from app.api.problems import send_problem


class Admission(enum.Enum):
    ENTERED = "entered"  # holds a slot: leave() it
    SHED = "shed"  # waited too long: answer 503
    GONE = "gone"  # the client left while waiting: answer nothing


class Gate:
    """The slots of one process (create_app keeps it on `app.state.load_gate`)."""

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

    async def admit(self, receive: Receive) -> tuple[Admission, Receive]:
        """Take a slot, waiting in line when none is free; and the `receive` to use next."""
        gate = self.semaphore()
        if not gate.locked():
            await gate.acquire()  # never suspends when unlocked
            return Admission.ENTERED, receive
        try:
            # A timer on this task, where wait_for would wrap the wait in a task of its own:
            # under load nearly every request waits here (bench/list_api.py, -c32).
            async with asyncio.timeout(self.queue_timeout_s):
                await gate.acquire()
        except TimeoutError:
            return Admission.SHED, receive
        # After a wait, skip the work if the client has gone: a burst's abandoned
        # requests would otherwise delay the next clients' for seconds.
        first = await receive()
        if first["type"] == "http.disconnect":
            gate.release()
            return Admission.GONE, receive
        return Admission.ENTERED, _replaying(first, receive)

    def leave(self) -> None:
        self.semaphore().release()


async def send_shed(scope: Scope, send: Send) -> None:
    """The 503 for a request that waited longer than the queue timeout."""
    await send_problem(
        scope,
        send,
        503,
        "The service is at capacity; retry shortly.",
        slug="service-unavailable",
        title="Service unavailable",
    )


def _replaying(first: Message, receive: Receive) -> Receive:
    """`receive`, giving back the message we already took from it first."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
