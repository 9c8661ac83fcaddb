"""Alembic environment: URL from the caller (tests, `corpus migrate`) or from Settings."""

from typing import Any

from alembic import context
from sqlalchemy import Engine

from app import models
from app.db import make_engine
from app.settings import Settings

config = context.config
target_metadata = models.metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    return name not in models.MANUAL_OBJECTS


def database_url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else Settings().database_url


def run_migrations_offline() -> None:
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # No statement timeout: building an index on a large table may take minutes.
    settings = Settings(database_url=database_url(), statement_timeout_ms=0)
    engine: Engine = make_engine(settings, pooled=False)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                include_object=include_object,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
