"""Fixtures for the suite: every database test runs on a SQLite file and on PostgreSQL.

Each backend gets one migrated template per run; each test gets its own copy (SQLite: a
file copy; PostgreSQL: CREATE DATABASE ... TEMPLATE), so tests never see each other's rows.
Helpers that test modules import live in tests/databases.py and tests/factories.py.
"""

import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from app.db import backend, make_engine, migrate
from app.settings import Settings
from tests.databases import BACKENDS, PG_ADMIN_URL, clone, drop, pg_admin, pg_url
from tests.factories import CORPUS_IDS, SEED_FILE, corpus_records, make_client
from tests.pgbouncer import PgBouncer, run_pgbouncer
from tests.replica import Replica, run_replica


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


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(database_url) as c:
        yield c


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
    async with make_client(seeded_url) as c:
        yield c


@pytest.fixture
def pg_database_url(database_url: str) -> str:
    """`database_url`, for tests of what only PostgreSQL has (poolers, replicas)."""
    if backend(database_url) != "postgresql":
        pytest.skip("PostgreSQL only: a pooler and replicas stand beside a server")
    return database_url


def _postgresql_only() -> None:
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL is not among CORPUS_TEST_BACKENDS")


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the suite's server (tests/pgbouncer.py)."""
    _postgresql_only()
    with run_pgbouncer() as pooler:
        yield pooler


@pytest.fixture(scope="session")
def replica() -> Iterator[Replica]:
    """A streaming replica of the suite's server on a port of its own (tests/replica.py)."""
    _postgresql_only()
    with run_replica() as standby:
        yield standby
