"""Takedowns: the `takedown` table, one row per article `corpus delete` removed.

The article's row is deleted; this row keeps the id, its source, the deletion's revision
(from the articles' sequence, so the change feed can order it), when, why, and whether
`corpus restore` has lifted it. The downgrade drops the table: the deleted articles stay
deleted, but a later ingest would bring them back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "takedown",
        sa.Column(
            "article_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("restored_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("article_id", name="pk_takedown"),
    )
    op.create_index("ix_takedown_revision", "takedown", ["revision"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_takedown_revision", table_name="takedown")
    op.drop_table("takedown")
