"""Test databases: the backends a run covers, and copies of a migrated template on each.

SQLite copies are file copies; PostgreSQL copies are CREATE DATABASE ... TEMPLATE, made and
dropped through the server's admin database. The PostgreSQL pieces that run beside the
server (tests/pgbouncer.py, tests/replica.py) take their programs and folders from here.
"""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.db import backend
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


def terminate_connections(url: str) -> int:
    """End every server session on `url`'s database but the caller's, as a restart ends
    every pooled connection; how many it ended."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": make_url(url).database},
                ).scalar_one()
            )
    finally:
        admin.dispose()


def pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


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


# PostgreSQL's own programs (a replica cluster, PgBouncer) refuse to run as root: as root,
# the suite runs them as the server's account, in folders that account owns.
SERVER_ACCOUNT = "postgres"


def as_server_account(command: list[str]) -> list[str]:
    """`command`, run as the PostgreSQL account when we are root."""
    return ["runuser", "-u", SERVER_ACCOUNT, "--", *command] if os.geteuid() == 0 else command


def give_to_server_account(path: Path) -> None:
    """Make the PostgreSQL account the owner of `path`, when we are root."""
    if os.geteuid() == 0:
        shutil.chown(path, SERVER_ACCOUNT, SERVER_ACCOUNT)


# In each such folder: the id of the test process it belongs to.
OWNER_FILE = "owner.pid"


def server_folder(prefix: str) -> Path:
    """A new private folder that the PostgreSQL account (when we are root) owns, marked
    with this process's id."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / OWNER_FILE).write_text(str(os.getpid()))
    give_to_server_account(folder)
    return folder


def abandoned_folders(prefix: str) -> list[Path]:
    """Folders of `prefix` whose test process has gone without stopping what runs in them
    (a run killed, or crashed): what it started there is for the next run to stop."""
    found = []
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            found.append(folder)
        except PermissionError:
            pass  # alive, and someone else's
    return found


def pg_scalar(url: str, sql: str) -> object:
    """One value from the server at `url`, in autocommit."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def pg_bin(program: str) -> str:
    """The path of one of the server's programs, of the admin server's major version."""
    major = int(str(pg_scalar(PG_ADMIN_URL, "SHOW server_version_num"))) // 10_000
    path = Path(f"/usr/lib/postgresql/{major}/bin/{program}")
    found = str(path) if path.exists() else shutil.which(program)
    assert found, f"{program} of PostgreSQL {major} is not installed (scripts/test-prereqs)"
    return found


def with_server(url: str, host: str, port: int) -> str:
    """`url` with another server's host and port: the same database there."""
    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)
