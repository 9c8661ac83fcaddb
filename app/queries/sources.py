"""Reads of the source table, with article counts. Knows nothing of HTTP."""

from collections.abc import Sequence

from sqlalchemy import Row, Select, func, select
from sqlmodel import Session, col

from app import models
from app.errors import NotFound


def _with_counts() -> Select[int, str | None, int]:
    article = models.Article
    return (
        select(
            col(models.Source.source_id),
            col(models.Source.name),
            func.count(col(article.article_id)).label("article_count"),
        )
        .outerjoin(article, col(article.source_id) == col(models.Source.source_id))
        .group_by(col(models.Source.source_id), col(models.Source.name))
    )


def list_sources(session: Session) -> Sequence[Row[int, str | None, int]]:
    """Every source by id, with how many articles each has."""
    stmt = _with_counts().order_by(col(models.Source.source_id))
    return session.execute(stmt).all()


def get_source(session: Session, source_id: int) -> Row[int, str | None, int]:
    row = session.execute(
        _with_counts().where(col(models.Source.source_id) == source_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"No source with source_id {source_id}.")
    return row


def ensure_source_exists(session: Session, source_id: int) -> None:
    """Raise NotFound unless the source exists: a cheap primary-key probe, no count."""
    if session.get(models.Source, source_id) is None:
        raise NotFound(f"No source with source_id {source_id}.")
