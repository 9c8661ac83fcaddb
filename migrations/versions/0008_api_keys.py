"""API keys (app/api/auth.py) and a cursor secret per database.

Adds `api_key`, which holds each key's hash, never the key, with its rate, expiry,
revocation and usage counts. Adds a random `cursor_secret` row to `corpus_meta`, so that
cursors are signed with a secret nobody can read from our source; a configured
CORPUS_CURSOR_SECRET still takes precedence.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("key_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("rate", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("requests_total", sa.BigInteger(), nullable=False),
        sa.Column("requests_today", sa.BigInteger(), nullable=False),
        sa.Column("usage_day", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_key"),
        sa.UniqueConstraint("prefix", name="uq_api_key_prefix"),
        sa.UniqueConstraint("key_hash", name="uq_api_key_key_hash"),
    )
    meta = sa.table("corpus_meta", sa.column("key", sa.Text()), sa.column("value", sa.Text()))
    op.bulk_insert(meta, [{"key": "cursor_secret", "value": secrets.token_urlsafe(32)}])


def downgrade() -> None:
    op.execute("DELETE FROM corpus_meta WHERE key = 'cursor_secret'")
    op.drop_table("api_key")
