"""Alembic is the only way the schema changes: upgrade, downgrade and drift, on both backends."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app import models
from app.db import downgrade, make_engine, migrate
from app.settings import Settings


def _tables(url: str) -> set[str]:
    engine = make_engine(Settings(database_url=url), pooled=False)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trips(database_url: str) -> None:
    assert {"article", "source"} <= _tables(database_url)
    downgrade(database_url, "base")
    assert _tables(database_url) <= {"alembic_version"}
    migrate(database_url)
    assert {"article", "source"} <= _tables(database_url)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": _ours}
            )
            diff = compare_metadata(context, models.metadata)
    finally:
        engine.dispose()
    assert diff == []


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (type_ == "table" and name == "alembic_version") and (
        name not in models.MANUAL_OBJECTS
    )
