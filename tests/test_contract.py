"""The contract as clients meet it: schemathesis against a live server, request ids, logs,
CORS, and a read-only API."""

import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app import logs
from app.main import create_app
from app.settings import Settings
from tests.factories import client_for
from tests.live import LiveServer, serve

pytestmark = pytest.mark.anyio

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
# Bounded so the suite stays within minutes: examples per operation, per phase.
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def live(seeded_url: str) -> Iterator[LiveServer]:
    with serve(seeded_url) as server:
        yield server


def test_schemathesis_finds_no_server_error_or_contract_violation(
    live: LiveServer, tmp_path: Path
) -> None:
    """Property-based run over every operation: examples, coverage and fuzzing phases."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.fail("schemathesis is missing: pip install -e '.[dev]'")
    result = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{live.url}/openapi.json",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "20240601",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ],
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    print(summary)  # noqa: T201 - the run's summary belongs in the test log
    # Exit 0: no check failed. (A warning that list operations "mostly rejected generated
    # data" is expected: a random string is never a validly signed cursor, so it gets a 400.)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\nserver:\n{live.log_text()}"
    assert " passed" in summary
    assert "failed" not in summary.lower()


# --- in-process checks ---------------------------------------------------------------


@pytest.fixture
async def cors_client(seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=seeded_url, cors_allow_origins=["http://app.test"]))
    async with client_for(app) as client:
        yield client


async def test_routes_are_read_only(seeded: httpx.AsyncClient) -> None:
    document = (await seeded.get("/openapi.json")).json()
    for path in document["paths"]:
        url = path.replace("{article_id}", "8").replace("{source_id}", "2")
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = await seeded.request(method, url)
            assert response.status_code == 405, (method, url)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["allow"] == "GET, HEAD"


async def test_every_response_gets_a_request_id(seeded: httpx.AsyncClient) -> None:
    ok = await seeded.get("/v1/sources")
    missing = await seeded.get("/v1/articles/1")
    assert len(ok.headers["x-request-id"]) == 32
    assert ok.headers["x-request-id"] != missing.headers["x-request-id"]
    assert missing.json()["request_id"] == missing.headers["x-request-id"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-123.abc_DEF", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
        ("ünï", False),
    ],
)
async def test_sane_client_request_ids_are_honoured(
    seeded: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    response = await seeded.get("/healthz", headers=[(b"X-Request-ID", sent.encode())])
    assert response.status_code == 200
    got = response.headers["x-request-id"]
    assert (got == sent) is kept
    if not kept:
        assert len(got) == 32


async def test_an_unexpected_error_is_a_bare_500_problem_with_its_id(
    seeded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(Settings(database_url=seeded_url, log_format="json"))

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("secret internals")

    async with client_for(app) as client:
        response = await client.get("/boom", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "trace-me"
    assert response.json()["request_id"] == "trace-me"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    error = next(line for line in logged if line["logger"] == "app.problems")
    assert error["request_id"] == "trace-me"
    assert "secret internals" in error["exception"]


async def test_access_log_is_json_lines_with_id_method_path_status_duration(
    seeded_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(Settings(database_url=seeded_url, log_format="json", access_log=True))
    async with client_for(app) as client:
        await client.get("/v1/sources/2", headers={"X-Request-ID": "abc"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    access = [line for line in lines if line["logger"] == "app.access"]
    assert len(access) == 1
    line = access[0]
    assert {k: line[k] for k in ("request_id", "method", "path", "status")} == {
        "request_id": "abc",
        "method": "GET",
        "path": "/v1/sources/2",
        "status": 200,
    }
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"


async def test_cors_exposes_link_etag_and_request_id_to_allowed_origins(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.get("/v1/sources", headers={"Origin": "http://app.test"})
    assert response.headers["access-control-allow-origin"] == "http://app.test"
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"link", "etag", "x-request-id"} <= exposed
    assert "Origin" in response.headers["vary"]
    preflight = await cors_client.options(
        "/v1/articles",
        headers={
            "Origin": "http://app.test",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match, x-request-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.test"


async def test_cors_says_nothing_to_other_origins(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/v1/sources", headers={"Origin": "http://evil.test"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = await cors_client.options(
        "/v1/sources",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_is_off_by_default(seeded: httpx.AsyncClient) -> None:
    response = await seeded.get("/v1/sources", headers={"Origin": "http://app.test"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_come_from_either_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://a.example, https://b.example/")
    assert Settings().cors_allow_origins == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("CORPUS_CORS_ALLOW_ORIGINS", "https://c.example")
    monkeypatch.delenv("CORS_ALLOW_ORIGINS")
    assert Settings().cors_allow_origins == ["https://c.example"]


def test_access_log_follows_uvicorn_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, our access line replaces uvicorn's under --access-log and is off under
    --no-access-log (uvicorn then leaves its access logger without handlers)."""
    uvicorn_access = logging.getLogger("uvicorn.access")
    ours = logging.getLogger("app.access")
    monkeypatch.setattr(uvicorn_access, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(uvicorn_access, "disabled", False)
    logs.configure(Settings())
    assert not ours.disabled
    assert uvicorn_access.disabled
    monkeypatch.setattr(uvicorn_access, "handlers", [])
    logs.configure(Settings())
    assert ours.disabled
    logs.configure(Settings(access_log=True))
    assert not ours.disabled
