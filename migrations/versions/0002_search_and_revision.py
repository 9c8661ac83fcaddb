"""Search and change tracking: word_count, revision, title order, full-text index.

SQLite gets an external-content FTS5 table kept in step by triggers; PostgreSQL a
generated, weighted tsvector column with a GIN index. Titles sort in code-point order on
both (PostgreSQL: COLLATE "C").

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
# to_tsvector refuses documents over 1 MB; index the first 500k characters of a body.
PG_VECTOR = (
    "setweight(to_tsvector('english', title), 'A') || "
    "setweight(to_tsvector('english', left(content, 500000)), 'B')"
)
SQLITE_TRIGGERS = {
    "article_fts_ai": """
        CREATE TRIGGER article_fts_ai AFTER INSERT ON article BEGIN
          INSERT INTO article_fts(rowid, title, content)
          VALUES (new.article_id, new.title, new.content);
        END""",
    "article_fts_ad": """
        CREATE TRIGGER article_fts_ad AFTER DELETE ON article BEGIN
          INSERT INTO article_fts(article_fts, rowid, title, content)
          VALUES ('delete', old.article_id, old.title, old.content);
        END""",
    "article_fts_au": """
        CREATE TRIGGER article_fts_au AFTER UPDATE OF title, content ON article BEGIN
          INSERT INTO article_fts(article_fts, rowid, title, content)
          VALUES ('delete', old.article_id, old.title, old.content);
          INSERT INTO article_fts(rowid, title, content)
          VALUES (new.article_id, new.title, new.content);
        END""",
}


def _backfill(bind: sa.Connection) -> None:
    """word_count and revision for rows loaded before this revision, in id order."""
    article = sa.table(
        "article",
        sa.column("article_id", sa.BigInteger),
        sa.column("content", sa.Text),
        sa.column("word_count", sa.Integer),
        sa.column("revision", sa.BigInteger),
    )
    last, rev = 0, 0
    while True:
        rows = bind.execute(
            sa.select(article.c.article_id, article.c.content)
            .where(article.c.article_id > last)
            .order_by(article.c.article_id)
            .limit(1000)
        ).all()
        if not rows:
            return
        updates = []
        for article_id, content in rows:
            rev += 1
            updates.append({"b_id": article_id, "b_wc": len(content.split()), "b_rev": rev})
        bind.execute(
            article.update()
            .where(article.c.article_id == sa.bindparam("b_id"))
            .values(word_count=sa.bindparam("b_wc"), revision=sa.bindparam("b_rev")),
            updates,
        )
        last = rows[-1][0]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("article") as batch:
        batch.add_column(sa.Column("word_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0"))
    # The server defaults stay: dropping them would make SQLite copy the whole table.
    _backfill(bind)
    op.create_index("ix_article_revision", "article", ["revision"], unique=True)
    if bind.dialect.name == "postgresql":
        op.execute('ALTER TABLE article ALTER COLUMN title TYPE text COLLATE "C"')
        op.execute(
            f"ALTER TABLE article ADD COLUMN search_vector tsvector "
            f"GENERATED ALWAYS AS ({PG_VECTOR}) STORED"
        )
        op.execute("CREATE INDEX ix_article_search_vector ON article USING gin (search_vector)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE article_fts USING fts5(title, content, "
            f"content='article', content_rowid='article_id', tokenize='{FTS_TOKENIZER}')"
        )
        for ddl in SQLITE_TRIGGERS.values():
            op.execute(ddl)
        op.execute("INSERT INTO article_fts(article_fts) VALUES ('rebuild')")
    op.create_index("ix_article_title_article_id", "article", ["title", "article_id"])


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index("ix_article_title_article_id", table_name="article")
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX ix_article_search_vector")
        op.execute("ALTER TABLE article DROP COLUMN search_vector")
        op.execute('ALTER TABLE article ALTER COLUMN title TYPE text COLLATE "default"')
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE article_fts")
    op.drop_index("ix_article_revision", table_name="article")
    with op.batch_alter_table("article") as batch:
        batch.drop_column("revision")
        batch.drop_column("word_count")
