"""Initial schema: source and article.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "source",
        sa.Column("source_id", Id, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("source_id", name="pk_source"),
    )
    op.create_table(
        "article",
        sa.Column("article_id", Id, autoincrement=False, nullable=False),
        sa.Column("source_id", Id, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("article_id", name="pk_article"),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.source_id"], name="fk_article_source_id_source"
        ),
    )
    op.create_index("ix_article_source_id_article_id", "article", ["source_id", "article_id"])


def downgrade() -> None:
    op.drop_index("ix_article_source_id_article_id", table_name="article")
    op.drop_table("article")
    op.drop_table("source")
