"""Backends for the suite: every database test runs on a SQLite file and on PostgreSQL.

Each backend gets one migrated template per run; each test gets its own copy (SQLite: a
file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE), so tests never see each other's rows.
"""

import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.db import backend, make_engine, migrate
from app.main import create_app
from app.search.sync import newest_revision
from app.settings import Settings

# Normalised like any URL we accept: a bare postgresql:// URL gets the psycopg driver.
PG_ADMIN_URL = Settings(
    database_url=os.environ.get(
        "PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
).database_url
BACKENDS = [
    b.strip() for b in os.environ.get("CORPUS_TEST_BACKENDS", "sqlite,postgresql").split(",")
]


def pg_admin(sql: str) -> None:
    """Run one statement on the admin database, outside a transaction (CREATE DATABASE)."""
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


def pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def pytest_report_header() -> list[str]:
    lines = [f"sqlite: {sqlite3.sqlite_version}"]
    if "postgresql" in BACKENDS:
        engine = create_engine(PG_ADMIN_URL)
        try:
            with engine.connect() as connection:
                lines.append(
                    f"postgresql: {connection.execute(text('SHOW server_version')).scalar()}"
                )
        except Exception as exc:  # noqa: BLE001 - a header must not break the run
            lines.append(f"postgresql: unreachable ({type(exc).__name__})")
        finally:
            engine.dispose()
    return lines


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def index_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """PostgreSQL databases' search indexes go under a temporary folder, not ./data/index
    (SQLite's sit beside their file, already temporary). Live servers inherit it."""
    root = tmp_path_factory.mktemp("index")
    previous = os.environ.get("CORPUS_INDEX_ROOT")
    os.environ["CORPUS_INDEX_ROOT"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("CORPUS_INDEX_ROOT", None)
    else:
        os.environ["CORPUS_INDEX_ROOT"] = previous


@pytest.fixture(scope="session", params=BACKENDS)
def template_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database per backend, migrated once; each test gets a copy."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'template.db'}"
        migrate(url)
        yield url
        return
    name = f"corpus_tpl_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    migrate(url)
    yield url
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clone(template: str, tmp_path: Path) -> str:
    """A fresh copy of the migrated template."""
    if backend(template) == "sqlite":
        source = make_url(template).database
        assert source is not None
        target = tmp_path / f"corpus-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(source, target)
        return f"sqlite:///{target}"
    name = f"corpus_t_{uuid.uuid4().hex[:12]}"
    template_name = make_url(template).database
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    return pg_url(name)


def drop(url: str) -> None:
    if backend(url) == "postgresql":
        pg_admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture
def database_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of its own for one test (outside the test's tmp_path)."""
    url = clone(template_url, tmp_path_factory.mktemp("db"))
    yield url
    drop(url)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(Settings(database_url=database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def db_backend(database_url: str) -> str:
    return backend(database_url)


# Tests write and then search at once: the follower looks for new writes this often.
TEST_INDEX_POLL_S = 0.02


async def index_caught_up(app: FastAPI, timeout_s: float = 20.0) -> None:
    """Wait until the app's search index has applied every write committed so far."""
    follower = app.state.follower
    try:
        target = newest_revision(app.state.engine)
    except SQLAlchemyError:
        return  # tests of an unreachable database: there is nothing to catch up with

    deadline = time.monotonic() + timeout_s
    while True:
        status = follower.status()
        if status.ready and status.index_revision >= target:
            return
        assert time.monotonic() < deadline, f"the search index did not catch up: {status}"
        await anyio.sleep(TEST_INDEX_POLL_S)


async def search_caught_up(client: httpx.AsyncClient, database_url: str) -> None:
    """Wait until the client's server has indexed every write committed so far: a search
    sees a write within a poll interval, not at once."""
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        target = newest_revision(engine)
    finally:
        engine.dispose()
    deadline = time.monotonic() + 20.0
    while True:
        ready = (await client.get("/readyz")).json()
        index = ready.get("search_index") or {}
        if index.get("state") == "ready" and index.get("revision", -1) >= target:
            return
        assert time.monotonic() < deadline, f"the search index did not catch up: {ready}"
        await anyio.sleep(TEST_INDEX_POLL_S)


async def make_client(
    database_url: str, *, wait_for_index: bool = True, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings.setdefault("index_poll_s", TEST_INDEX_POLL_S)
    app = create_app(Settings(database_url=database_url, **settings))
    async with app.router.lifespan_context(app):
        if wait_for_index:
            await index_caught_up(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """As uvicorn serves `app`: an unexpected error is the app's 500, not an exception."""
    async with app.router.lifespan_context(app):
        await index_caught_up(app)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for c in make_client(database_url):
        yield c


SEED_FILE = Path(__file__).resolve().parents[1] / "seeds" / "000_8f258d90936aba6f.txt"
# A small corpus with gaps in its ids, three sources, and the real seed article.
CORPUS_IDS = [i * 7 + (i % 3) for i in range(1, 121)]
CORPUS_SOURCES = (2, 5, 7)


def corpus_records() -> list[dict[str, object]]:
    from tests.factories import record

    return [
        record(article_id, source_id=CORPUS_SOURCES[n % 3], title=f"Title {n:03d}")
        for n, article_id in enumerate(CORPUS_IDS)
    ]


@pytest.fixture(scope="module")
def seeded_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database loaded once per module through the real ingest: read-only tests share it."""
    import orjson

    from app.ingest.pipeline import ingest

    url = clone(template_url, tmp_path_factory.mktemp("seeded"))
    data = tmp_path_factory.mktemp("corpus")
    (data / "corpus.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in corpus_records()))
    (data / "sources.json").write_text('{"2": "Reuters", "5": "BBC"}')
    shutil.copyfile(SEED_FILE, data / SEED_FILE.name)
    engine = make_engine(Settings(database_url=url), pooled=False)
    rejects: list[object] = []
    summary = ingest([data], engine, on_reject=rejects.append)
    engine.dispose()
    assert rejects == []
    assert summary.inserted == len(CORPUS_IDS) + 1
    yield url
    drop(url)


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the shared seeded database."""
    async for c in make_client(seeded_url):
        yield c
