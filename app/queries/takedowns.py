"""What the API reads of takedowns: when an article went, and deletions for the change feed.

The reason for a takedown is never read here: it is for operators, not for responses.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlmodel import Session

from app import models

# A deletion as the change feed gives it.
DELETION_COLUMNS = ("article_id", "revision", "deleted_at")


def deleted_at(session: Session, article_id: int) -> datetime | None:
    """When `article_id` was taken down, or None if it never was (or was restored and
    ingested again: then the article row answers first)."""
    takedown = models.takedown_table
    found = session.execute(
        select(takedown.c.deleted_at).where(takedown.c.article_id == article_id)
    ).scalar_one_or_none()
    return found


def list_deletions(session: Session, *, after: int, limit: int) -> Sequence[Row[Any]]:
    """Up to `limit` takedowns with revision > `after`, oldest first (the unique index).

    Restored ones stay: the deletion happened, and a mirror must have applied it before
    the article's return, which comes later in revision order."""
    takedown = models.takedown_table
    stmt = (
        select(*(takedown.c[name] for name in DELETION_COLUMNS))
        .where(takedown.c.revision > after)
        .order_by(takedown.c.revision)
        .limit(limit)
    )
    return session.execute(stmt).all()
