"""The thread hop of app/api/calls.py keeps what anyio.to_thread gave: context, and a
cancelled caller that waits for its thread before its own cleanup runs."""

import asyncio
import contextvars
import threading

import pytest

from app.api.calls import in_thread

pytestmark = pytest.mark.anyio

REQUEST = contextvars.ContextVar[str]("REQUEST")


async def test_the_callers_context_goes_along_to_a_worker_thread() -> None:
    REQUEST.set("mine")
    assert await in_thread(REQUEST.get) == "mine"
    worker = await in_thread(threading.current_thread)
    assert worker is not threading.current_thread()
    assert worker.name.startswith("corpus-db")


async def test_a_cancelled_caller_waits_for_its_thread_to_finish() -> None:
    loop = asyncio.get_running_loop()
    started, release = asyncio.Event(), threading.Event()
    finished: list[str] = []

    def work() -> None:
        loop.call_soon_threadsafe(started.set)
        release.wait(5)
        finished.append("done")

    task = asyncio.create_task(in_thread(work))
    await started.wait()
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # a session closed now would race the work still using it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["done"]
