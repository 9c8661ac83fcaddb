"""Search moves out of the database into a tantivy index derived from it (app/search/).

Drops SQLite's FTS5 table and its triggers, and PostgreSQL's `search_vector` column, its
GIN index, trigger and function: the database keeps only the articles, and each API host
keeps its own index, rebuilt from them at will. Adds `corpus_meta`, whose `database_id`
names this database, so an index built from another one is never served.

The downgrade restores the objects as migrations 0002 and 0005 left them and fills them
from the stored rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As of migrations 0002 and 0005, copied so this revision never changes.
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
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
PG_VECTOR = (
    "setweight(to_tsvector('english', {row}title), 'A') || "
    "setweight(to_tsvector('english', left({row}content, 500000)), 'B')"
)
PG_FUNCTION = f"""
CREATE FUNCTION article_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.search_vector IS NULL
     OR (coalesce(current_setting('corpus.search_vectors_given', true), '') <> 'on'
         AND (TG_OP = 'INSERT'
              OR (NEW.title, NEW.content) IS DISTINCT FROM (OLD.title, OLD.content)
              OR NEW.search_vector IS DISTINCT FROM OLD.search_vector)) THEN
    NEW.search_vector := {PG_VECTOR.format(row="NEW.")};
  END IF;
  RETURN NEW;
END
$$"""
PG_TRIGGER = (
    "CREATE TRIGGER article_search_vector BEFORE INSERT OR UPDATE ON article"
    " FOR EACH ROW EXECUTE FUNCTION article_search_vector()"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS article_search_vector ON article")
        op.execute("DROP FUNCTION IF EXISTS article_search_vector()")
        op.execute("DROP INDEX IF EXISTS ix_article_search_vector")
        op.execute("ALTER TABLE article DROP COLUMN IF EXISTS search_vector")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS article_fts")
    meta = op.create_table(
        "corpus_meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_corpus_meta"),
    )
    op.bulk_insert(meta, [{"key": "database_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table("corpus_meta")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE article ADD COLUMN search_vector tsvector")
        compression = bind.exec_driver_sql(
            "SELECT attcompression FROM pg_attribute"
            " WHERE attrelid = 'article'::regclass AND attname = 'content'"
        )
        if compression.scalar() == "l":
            op.execute("ALTER TABLE article ALTER COLUMN search_vector SET COMPRESSION lz4")
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
        op.execute(f"UPDATE article SET search_vector = {PG_VECTOR.format(row='')}")  # noqa: S608 - constants
        op.execute("CREATE INDEX ix_article_search_vector ON article USING gin (search_vector)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE article_fts USING fts5(title, content, "
            f"content='article', content_rowid='article_id', tokenize='{FTS_TOKENIZER}')"
        )
        for ddl in SQLITE_TRIGGERS.values():
            op.execute(ddl)
        op.execute("INSERT INTO article_fts(article_fts) VALUES ('rebuild')")
