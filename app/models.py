"""SQLModel tables: the single source of schema truth. Alembic revisions mirror these."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, MetaData, Table, Text
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime

# Named constraints and indexes, so a downgrade can drop them by name on both backends.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

# Backend-specific objects that revisions create by hand (0002: the SQLite FTS5 table and
# its triggers, PostgreSQL's tsvector column and GIN index; 0005: the trigger that keeps
# that column); autogenerate skips them.
FTS_TABLE = "article_fts"
SEARCH_VECTOR = "search_vector"
MANUAL_OBJECTS: frozenset[str] = frozenset(
    {
        FTS_TABLE,
        *(f"{FTS_TABLE}_{suffix}" for suffix in ("data", "idx", "docsize", "config", "content")),
        SEARCH_VECTOR,
        "ix_article_search_vector",
    }
)

# The largest id either backend stores (BIGINT): the bound of every id the API or ingest takes.
MAX_ID = 2**63 - 1
# On SQLite only `INTEGER PRIMARY KEY` makes the column the rowid: the fast path for id order.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Binary (code-point) order for titles on both backends: SQLite's default, "C" on PostgreSQL.
Title = Text().with_variant(Text(collation="C"), "postgresql")
TITLE_MAX_CHARS = 500  # keeps every title within a btree index entry on PostgreSQL


class Source(SQLModel, table=True):
    """A publisher. Rows appear as articles name them; names come from a sources file."""

    source_id: int = Field(sa_column=Column("source_id", Id, primary_key=True, autoincrement=False))
    name: str | None = Field(default=None, sa_column=Column("name", Text, nullable=True))


class Article(SQLModel, table=True):
    """One article, keyed by the corpus's own id (never generated here)."""

    __table_args__ = (
        Index("ix_article_source_id_article_id", "source_id", "article_id"),
        Index("ix_article_title_article_id", "title", "article_id"),
        Index("ix_article_revision", "revision", unique=True),
    )

    article_id: int = Field(
        sa_column=Column("article_id", Id, primary_key=True, autoincrement=False)
    )
    source_id: int = Field(
        sa_column=Column(
            "source_id",
            Id,
            ForeignKey("source.source_id", name="fk_article_source_id_source"),
            nullable=False,
        )
    )
    title: str = Field(sa_column=Column("title", Title, nullable=False))
    content: str = Field(sa_column=Column("content", Text, nullable=False))
    # Whitespace-separated tokens of content, counted once at ingest.
    word_count: int = Field(sa_column=Column("word_count", Integer, nullable=False))
    # The list items' excerpt of content (app/text.py), cut once at ingest.
    excerpt: str = Field(sa_column=Column("excerpt", Text, nullable=False))
    # Strictly increasing across all writes: the change feed's position.
    revision: int = Field(sa_column=Column("revision", BigInteger, nullable=False))
    # Fields a record carried beyond the known ones: kept, so nothing a corpus holds is lost.
    extra: dict[str, Any] | None = Field(
        default=None, sa_column=Column("extra", JSON, nullable=True)
    )
    # Hash over every stored field of the record: a re-ingest tells unchanged from changed.
    content_hash: str = Field(sa_column=Column("content_hash", Text, nullable=False))
    ingested_at: datetime = Field(sa_column=Column("ingested_at", UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column("updated_at", UTCDateTime, nullable=False))


# Core views of the tables, for SQL built without the ORM (bulk writes, keyset pages).
article_table: Table = Article.__table__  # type: ignore[attr-defined]
source_table: Table = Source.__table__  # type: ignore[attr-defined]
