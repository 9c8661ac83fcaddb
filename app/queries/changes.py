"""The change feed: rows by revision. Takes a Session, returns rows; knows nothing of HTTP.

Writers number revisions under the write lock and commit in that order (see
app/ingest/writer.py), so once a reader sees revision N, every revision below N is already
visible: walking `revision > after` in order never skips a change or repeats one.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlmodel import Session

from app import models
from app.queries.articles import DETAIL_COLUMNS

CHANGE_COLUMNS = (*DETAIL_COLUMNS, "revision")


def list_changes(session: Session, *, after: int, limit: int) -> Sequence[Row[Any]]:
    """Up to `limit` articles with revision > `after`, oldest change first (the unique index)."""
    article = models.article_table
    stmt = (
        select(*(article.c[name] for name in CHANGE_COLUMNS))
        .where(article.c.revision > after)
        .order_by(article.c.revision)
        .limit(limit)
    )
    return session.execute(stmt).all()
