"""What the API reads of takedowns: when an article went (the change feed's deletions are
in app/queries/changes.py).

The reason for a takedown is never read here: it is for operators, not for responses.
"""

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from app import models


def deleted_at(session: Session, article_id: int) -> datetime | None:
    """When `article_id` was taken down, or None if it never was (or was restored and
    ingested again: then the article row answers first)."""
    takedown = models.takedown_table
    found = session.execute(
        select(takedown.c.deleted_at).where(takedown.c.article_id == article_id)
    ).scalar_one_or_none()
    return found
