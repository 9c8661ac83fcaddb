"""Test databases: the backends a run covers, and copies of a migrated template on each.

SQLite copies are file copies; PostgreSQL copies are CREATE DATABASE ... TEMPLATE, made and
dropped through the server's admin database.
"""

import os
import shutil
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
