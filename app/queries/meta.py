"""Facts about the database itself, kept in `corpus_meta` by migrations. Takes a Session."""

from sqlalchemy import select
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
