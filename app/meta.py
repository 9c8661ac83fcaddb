"""Facts about the database itself, kept in `corpus_meta` by migrations: its id (which
names its search and vector indexes) and its cursor secret. Read by the API, the CLI and
the index followers alike, so it sits below all of them."""

from sqlalchemy import Engine, select
from sqlmodel import Session

from app import models
from app.errors import ServiceUnavailable


def cursor_secret(session: Session) -> str:
    """The random secret migration 0008 gave this database for signing cursors."""
    meta = models.meta_table
    query = select(meta.c.value).where(meta.c.key == models.CURSOR_SECRET_KEY)
    value = session.execute(query).scalar_one_or_none()
    if value is None:
        # Never fall back to a secret anyone could read in our source.
        raise ServiceUnavailable("The database has no cursor secret: run `corpus migrate`.")
    return str(value)


def database_id(engine: Engine) -> str:
    """The id migration 0006 gave this database: an index built from another is rebuilt."""
    meta = models.meta_table
    with engine.connect() as connection:
        found = connection.execute(
            select(meta.c.value).where(meta.c.key == models.DATABASE_ID_KEY)
        ).scalar_one()
    return str(found)
