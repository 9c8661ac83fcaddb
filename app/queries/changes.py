"""The change feed: rows by revision, articles and takedowns merged. Takes a Session,
returns rows; knows nothing of HTTP.

Writers number revisions under the write lock and commit in that order (see
app/ingest/writer.py), so once a reader sees revision N, every revision below N is already
visible: walking `revision > after` in order never skips a change or repeats one. Takedowns
take their revisions from the same sequence under the same lock (app/takedowns.py).
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlmodel import Session

from app import models
from app.queries import takedowns
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


def list_all_changes(session: Session, *, after: int, limit: int) -> list[tuple[bool, Row[Any]]]:
    """Up to `limit` changes with revision > `after` in revision order, each flagged
    `deleted`: the first `limit` of each kind, merged (one snapshot, so the two agree)."""
    session.connection()  # both reads in one transaction
    articles = list_changes(session, after=after, limit=limit)
    deletions = takedowns.list_deletions(session, after=after, limit=limit)
    merged = [(False, row) for row in articles] + [(True, row) for row in deletions]
    merged.sort(key=lambda change: int(change[1].revision))
    return merged[:limit]
