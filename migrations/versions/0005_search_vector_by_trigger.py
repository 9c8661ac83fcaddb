"""PostgreSQL: the search vector becomes a plain column that a load can fill itself.

As a generated column, `article.search_vector` was computed inside the INSERT, under the
ingest's write lock, one batch at a time: to_tsvector is ~300 µs of a ~3 KB article, most
of a load's time, and nothing else could run beside it. As a plain column, the loader
computes vectors in its staging table before it takes the lock, on two connections at
once (app/ingest/stores.py). A BEFORE INSERT OR UPDATE trigger keeps every other writer
right, as the generated column did: it derives the vector from the text on every insert,
and on every update that touches the text or the vector. Only a transaction that says it
brings its own vectors (`SET LOCAL corpus.search_vectors_given = 'on'`: the loader) is
trusted with them, and even then a row without one gets it computed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migration 0002's expression; {row} qualifies the columns ("NEW." in the trigger).
PG_VECTOR = (
    "setweight(to_tsvector('english', {row}title), 'A') || "
    "setweight(to_tsvector('english', left({row}content, 500000)), 'B')"
)
FUNCTION = f"""
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
TRIGGER = (
    "CREATE TRIGGER article_search_vector BEFORE INSERT OR UPDATE ON article"
    " FOR EACH ROW EXECUTE FUNCTION article_search_vector()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Metadata only: the stored vectors stay as they are.
    op.execute("ALTER TABLE article ALTER COLUMN search_vector DROP EXPRESSION")
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER article_search_vector ON article")
    op.execute("DROP FUNCTION article_search_vector()")
    # A column cannot become generated again in place (before PostgreSQL 17): re-add it,
    # which recomputes every vector, and its index; 0004's compression setting with it.
    op.execute("ALTER TABLE article DROP COLUMN search_vector")
    op.execute(
        "ALTER TABLE article ADD COLUMN search_vector tsvector"
        f" GENERATED ALWAYS AS ({PG_VECTOR.format(row='')}) STORED"
    )
    compression = op.get_bind().exec_driver_sql(
        "SELECT attcompression FROM pg_attribute"
        " WHERE attrelid = 'article'::regclass AND attname = 'content'"
    )
    if compression.scalar() == "l":
        op.execute("ALTER TABLE article ALTER COLUMN search_vector SET COMPRESSION lz4")
    op.execute("CREATE INDEX ix_article_search_vector ON article USING gin (search_vector)")
    # A load killed while it deferred the title index leaves it missing; code before this
    # revision repairs only SQLite's.
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_article_title_article_id ON article (title, article_id)"
    )
