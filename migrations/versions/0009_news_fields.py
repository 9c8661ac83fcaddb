"""The news fields: `published_at`, `url` and `author` as columns, with their indexes.

Adds the three columns and fills them for stored rows from `extra`, by the names and
formats ingest reads them (app/ingest/news_fields.py), so a corpus loaded before this
revision gains its dates without a re-ingest. A row whose values moved loses those names
from `extra`, gets the content hash ingest now computes for its record (so a re-ingest
finds it unchanged) and a new revision (so the change feed and the search index follow).
A row whose value does not parse (which ingest would have rejected) keeps it in `extra`.

Indexes: date order and ranges, alone and within a source; exact author and url.

The downgrade puts each value back into `extra` under its own name (`published_at` as
RFC 3339), with the hash and a new revision to match, then drops the indexes and columns.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime
from app.ingest import news_fields
from app.ingest.validate import record_hash

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

BATCH_ROWS = 1000
# As of this revision (app/models.py), so the migration never changes.
INDEXES = {
    "ix_article_published_at_article_id": ["published_at", "article_id"],
    "ix_article_source_id_published_at_article_id": ["source_id", "published_at", "article_id"],
    "ix_article_author_article_id": ["author", "article_id"],
    "ix_article_url": ["url"],
}
WRITE_LOCK_KEY = 0x61727469636C65  # app/writes/lock.py: serialises writers on PostgreSQL

article = sa.table(
    "article",
    sa.column("article_id", sa.BigInteger),
    sa.column("source_id", sa.BigInteger),
    sa.column("title", sa.Text),
    sa.column("content", sa.Text),
    sa.column("extra", sa.JSON),
    sa.column("content_hash", sa.Text),
    sa.column("revision", sa.BigInteger),
    sa.column("published_at", UTCDateTime),
    sa.column("url", sa.Text),
    sa.column("author", sa.Text),
)
takedown = sa.table("takedown", sa.column("revision", sa.BigInteger))

# A row's new values, or None to leave it as it is.
Change = dict[str, Any] | None


def _newest_revision(bind: sa.Connection) -> int:
    newest = [
        bind.execute(sa.select(sa.func.max(table.c.revision))).scalar_one() or 0
        for table in (article, takedown)
    ]
    return int(max(newest))


def _rewrite(
    bind: sa.Connection, columns: list[str], where: Any, change: Callable[..., Change]
) -> int:
    """Apply `change` to every row matching `where`, in id order, each changed row taking the
    next revision; how many rows changed."""
    if bind.dialect.name == "postgresql":
        bind.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
    next_revision = _newest_revision(bind) + 1
    selected = [article.c[name] for name in ("article_id", *columns)]
    update = (
        article.update()
        .where(article.c.article_id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(f"b_{name}") for name in (*UPDATED, "revision")})
    )
    last, changed = 0, 0
    while True:
        rows = bind.execute(
            sa.select(*selected)
            .where(article.c.article_id > last, where)
            .order_by(article.c.article_id)
            .limit(BATCH_ROWS)
        ).all()
        if not rows:
            return changed
        params = []
        for row in rows:
            values = change(*row[1:])
            if values is not None:
                params.append(
                    {"b_id": row[0], "b_revision": next_revision}
                    | {f"b_{name}": values[name] for name in UPDATED}
                )
                next_revision += 1
        if params:
            bind.execute(update, params)
            changed += len(params)
        last = rows[-1][0]


UPDATED = ("published_at", "url", "author", "extra", "content_hash")
READ = ["source_id", "title", "content", "extra"]


def _moved(source_id: int, title: str, content: str, extra: Any) -> Change:
    """The row with its news fields read out of `extra`, or None when it holds none or
    one of them does not parse (then it stays in `extra`, as it was)."""
    if not isinstance(extra, dict):
        return None
    news = news_fields.read(extra)
    if isinstance(news, str) or not news.used:
        return None
    kept = {k: v for k, v in extra.items() if k not in news.used} or None
    digest = record_hash(source_id, title, content, kept, news.published_at, news.url, news.author)
    return {
        "published_at": news.published_at,
        "url": news.url,
        "author": news.author,
        "extra": kept,
        "content_hash": digest,
    }


def _put_back(
    source_id: int,
    title: str,
    content: str,
    extra: Any,
    published_at: Any,
    url: str | None,
    author: str | None,
) -> Change:
    """The row with its news fields back in `extra` under their own names."""
    values = {"published_at": published_at, "url": url, "author": author}
    given = {k: v for k, v in values.items() if v is not None}
    if "published_at" in given:
        given["published_at"] = published_at.isoformat().replace("+00:00", "Z")
    merged = {**(extra if isinstance(extra, dict) else {}), **given}
    return {
        "published_at": None,
        "url": None,
        "author": None,
        "extra": merged,
        "content_hash": record_hash(source_id, title, content, merged),
    }


def upgrade() -> None:
    op.add_column("article", sa.Column("published_at", UTCDateTime(), nullable=True))
    op.add_column("article", sa.Column("url", sa.Text(), nullable=True))
    op.add_column("article", sa.Column("author", sa.Text(), nullable=True))
    moved = _rewrite(op.get_bind(), READ, article.c.extra.is_not(None), _moved)
    if moved:
        log.info("news fields: %d rows filled from extra", moved)
    # After the fill: one sort per index instead of an update of each.
    for name, columns in INDEXES.items():
        op.create_index(name, "article", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="article")
    dated = sa.or_(
        article.c.published_at.is_not(None),
        article.c.url.is_not(None),
        article.c.author.is_not(None),
    )
    _rewrite(op.get_bind(), [*READ, "published_at", "url", "author"], dated, _put_back)
    # Plain DROP COLUMN (SQLite 3.35+), as 0003's downgrade does.
    for name in ("author", "url", "published_at"):
        op.drop_column("article", name)
