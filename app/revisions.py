"""The revision sequence: its newest value, and the changes after one.

Articles and takedowns share one sequence (writers number both under the write lock,
app/ingest/stores.py and app/takedowns.py), so the newest revision is the larger of the
two tables' maxima, and the changes after a revision are both tables' rows above it,
merged in revision order. Every reader of either (the writers, the per-revision cache, the
change feed, the search index follower) uses the statements here.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    Text,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)

from app import models
from app.db import UTCDateTime

_MAXIMA = union_all(
    select(func.max(models.article_table.c.revision).label("revision")),
    select(func.max(models.takedown_table.c.revision).label("revision")),
).subquery("maxima")

# Two probes of unique indexes, never a scan.
NEWEST: Select[Any] = select(func.coalesce(func.max(_MAXIMA.c.revision), 0))


def newest_revision(connection: Connection) -> int:
    """The newest revision of any article or takedown; 0 for an empty database."""
    return int(connection.execute(NEWEST).scalar_one())


def changes_after(names: Sequence[str], after: int, limit: int) -> Select[Any]:
    """Up to `limit` changes with revision > `after`, in revision order: each article's
    columns `names` (which hold `article_id` and `revision`) with `deleted` false, and each
    takedown as `article_id` and `revision`, NULL for the other names, `deleted` true and
    its `deleted_at`.

    One statement, so one snapshot: two reads under READ COMMITTED could each miss what
    the other saw commit, and skip a change. Each side walks its own revision index.
    """
    article, takedown = models.article_table, models.takedown_table
    articles = (
        select(
            *(article.c[name] for name in names),
            literal(False).label("deleted"),
            cast(null(), UTCDateTime()).label("deleted_at"),
        )
        .where(article.c.revision > after)
        .order_by(article.c.revision)
        .limit(limit)
        .subquery()
    )
    kept = {"article_id": takedown.c.article_id, "revision": takedown.c.revision}
    deletions = (
        select(
            *(kept.get(name, _typed_null(article.c[name])).label(name) for name in names),
            literal(True).label("deleted"),
            takedown.c.deleted_at,
        )
        .where(takedown.c.revision > after)
        .order_by(takedown.c.revision)
        .limit(limit)
        .subquery()
    )
    both = union_all(select(articles), select(deletions)).subquery()
    return select(both).order_by(both.c.revision).limit(limit)


def _typed_null(column: Column[Any]) -> ColumnElement[Any]:
    """NULL as `column`'s type: PostgreSQL types a bare NULL in a subquery as text, which a
    UNION cannot match with a number. (Text without the title's collation: a cast has none.)"""
    type_ = Text() if isinstance(column.type, Text) else column.type
    return cast(null(), type_)
