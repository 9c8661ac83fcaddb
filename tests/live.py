"""Live uvicorn servers for the tests that need real sockets: clients, browsers, outages, load.

`serve(database_url)` starts `uvicorn --factory app.main:create_app` in a subprocess on a
free loopback port, waits until /healthz answers, and stops it on exit. Settings go in as
environment variables, exactly as a deployment would give them.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.cli import SERVER_LOOP

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LiveServer:
    url: str
    log: Path
    pid: int = 0  # the server process (with one worker, the one that serves)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_when(self, done: Callable[[str], bool], timeout_s: float = 5.0) -> str:
        """The log once `done` holds of it, or as it is after `timeout_s`: a request's access
        line is written just after its answer is sent, so a client may read it before."""
        deadline = time.monotonic() + timeout_s
        while not done(text := self.log_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(
    database_url: str, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    """A server on 127.0.0.1:<free port> for `database_url`, until the block ends."""
    port = free_port()
    environment = {
        **os.environ,
        "CORPUS_DATABASE_URL": database_url,
        "CORPUS_LOG_FORMAT": "json",
        **(env or {}),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "app.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        SERVER_LOOP,  # as `corpus serve` runs it
        "--no-access-log",  # ours is on, as JSON lines with the request id
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    with tempfile.NamedTemporaryFile("wb", prefix="uvicorn-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", Path(log.name), process.pid)
    try:
        _wait_until_healthy(server, process)
        yield server
    finally:
        stop(process)
        server.log.unlink(missing_ok=True)


def stop(process: "subprocess.Popen[bytes]") -> None:
    """SIGTERM, and SIGKILL if it has not exited 10 s later."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_indexes(server: LiveServer, timeout_s: float = 60.0) -> None:
    """Until /readyz says the search index, and the vector index if there is one, are ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = httpx.get(f"{server.url}/readyz", timeout=5.0).json()
        states = [ready.get("search_index"), ready.get("vector_index")]
        if all(state is None or state["state"] == "ready" for state in states):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"indexes not ready in {timeout_s}s: {ready}\n{server.log_text()}")
        time.sleep(0.05)


def _wait_until_healthy(server: LiveServer, process: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer on /healthz in {START_TIMEOUT_S}s:\n{server.log_text()}")


def wait_for_search(server: LiveServer, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until the server's search index has caught up with its database."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        index = httpx.get(f"{server.url}/readyz", timeout=5.0).json().get("search_index") or {}
        if index.get("state") == "ready" and index["revision"] >= index["database_revision"]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the search index did not catch up in {timeout_s}s\n{server.log_text()}")


def latencies_ms(url: str, until: threading.Event, *, pause_s: float = 0.005) -> list[float]:
    """GET `url` one request after another until `until` is set: each one's latency in ms.
    A non-200 answer raises."""
    found: list[float] = []
    with httpx.Client(timeout=30.0) as client:
        while not until.is_set():
            started = time.perf_counter()
            response = client.get(url)
            found.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            time.sleep(pause_s)
    return found


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]
