"""Stored excerpt: list items read it instead of cutting the body on every request.

Adds `article.excerpt` and fills it for stored rows with the same rule app/text.py
applies at ingest (copied here as of this revision, so the migration never changes).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXCERPT_CHARS = 240
BATCH_ROWS = 2000


def _excerpt(head: str) -> str:
    """app/text.py's excerpt of a body, given its first EXCERPT_CHARS + 1 characters."""
    if len(head) <= EXCERPT_CHARS:
        return head
    space = head.rfind(" ", EXCERPT_CHARS // 2 + 1, EXCERPT_CHARS)
    return head[: space if space > 0 else EXCERPT_CHARS].rstrip() + "…"


def _backfill(bind: sa.Connection) -> None:
    """The excerpt of every stored row, in id order, reading only each body's head."""
    article = sa.table(
        "article",
        sa.column("article_id", sa.BigInteger),
        sa.column("content", sa.Text),
        sa.column("excerpt", sa.Text),
    )
    head = sa.func.substr(article.c.content, 1, EXCERPT_CHARS + 1)
    update = (
        article.update()
        .where(article.c.article_id == sa.bindparam("b_id"))
        .values(excerpt=sa.bindparam("b_excerpt"))
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(article.c.article_id, head)
            .where(article.c.article_id > last)
            .order_by(article.c.article_id)
            .limit(BATCH_ROWS)
        ).all()
        if not rows:
            return
        bind.execute(update, [{"b_id": i, "b_excerpt": _excerpt(text)} for i, text in rows])
        last = rows[-1][0]


def upgrade() -> None:
    # NOT NULL with a default: a plain ADD COLUMN on both backends, no table copy. The
    # default stays, as 0002's do: dropping it would make SQLite copy the whole table.
    op.add_column("article", sa.Column("excerpt", sa.Text(), nullable=False, server_default=""))
    _backfill(op.get_bind())


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table, which would drop the
    # full-text triggers that 0002 put on it.
    op.drop_column("article", "excerpt")
