"""The change feed: rows by revision, articles and takedowns merged. Takes a Session,
returns rows; knows nothing of HTTP.

Writers number revisions under the write lock and commit in that order (see
app/ingest/writer.py), so once a reader sees revision N, every revision below N is already
visible: walking `revision > after` in order never skips a change or repeats one. Takedowns
take their revisions from the same sequence under the same lock (app/takedowns.py).
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Row, Text, cast, literal, null, select, union_all
from sqlmodel import Session

from app import models
from app.db import UTCDateTime
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


def list_all_changes(session: Session, *, after: int, limit: int) -> Sequence[Row[Any]]:
    """Up to `limit` changes with revision > `after` in revision order: articles (with
    `deleted` false) and takedowns (`deleted` true, with `deleted_at`).

    One statement, so one snapshot: two reads under READ COMMITTED could each miss what
    the other saw commit, and skip a change. Each side walks its own revision index.
    """
    article, takedown = models.article_table, models.takedown_table
    articles = (
        select(
            *(article.c[name] for name in CHANGE_COLUMNS),
            literal(False).label("deleted"),
            cast(null(), UTCDateTime()).label("deleted_at"),
        )
        .where(article.c.revision > after)
        .order_by(article.c.revision)
        .limit(limit)
        .subquery()
    )
    gone = {"article_id": takedown.c.article_id, "revision": takedown.c.revision}
    deletions = (
        select(
            *(gone.get(name, _typed_null(article.c[name])).label(name) for name in CHANGE_COLUMNS),
            literal(True).label("deleted"),
            takedown.c.deleted_at,
        )
        .where(takedown.c.revision > after)
        .order_by(takedown.c.revision)
        .limit(limit)
        .subquery()
    )
    both = union_all(select(articles), select(deletions)).subquery()
    stmt = select(both).order_by(both.c.revision).limit(limit)
    return session.execute(stmt).all()


def _typed_null(column: Column[Any]) -> ColumnElement[Any]:
    """NULL as `column`'s type: PostgreSQL types a bare NULL in a subquery as text, which a
    UNION cannot match with a number. (Text without the title's collation: a cast has none.)"""
    type_ = Text() if isinstance(column.type, Text) else column.type
    return cast(null(), type_)
