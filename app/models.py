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

# Backend-specific objects that revisions create by hand (0002's FTS5 table and tsvector,
# dropped again by 0006 in favour of the tantivy index); autogenerate skips them, so a
# schema at an older revision still compares clean.
FTS_TABLE = "article_fts"
MANUAL_OBJECTS: frozenset[str] = frozenset(
    {
        FTS_TABLE,
        *(f"{FTS_TABLE}_{suffix}" for suffix in ("data", "idx", "docsize", "config", "content")),
        "search_vector",
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
# The same bound for the indexed url and author (an index entry holds at most ~2.7 KB).
URL_MAX_BYTES = 2048
AUTHOR_MAX_CHARS = 500


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
        # The time axis: date order and ranges, alone and within a source.
        Index("ix_article_published_at_article_id", "published_at", "article_id"),
        Index(
            "ix_article_source_id_published_at_article_id",
            "source_id",
            "published_at",
            "article_id",
        ),
        Index("ix_article_author_article_id", "author", "article_id"),
        Index("ix_article_url", "url"),
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
    # When it was published (UTC), where, and by whom: null when the record did not say.
    published_at: datetime | None = Field(
        default=None, sa_column=Column("published_at", UTCDateTime, nullable=True)
    )
    url: str | None = Field(default=None, sa_column=Column("url", Text, nullable=True))
    author: str | None = Field(default=None, sa_column=Column("author", Text, nullable=True))
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


class Takedown(SQLModel, table=True):
    """An article removed by `corpus delete`: its content is gone from `article`; this row
    keeps it gone (ingest suppresses the id) and tells the change feed (app/takedowns.py).

    `revision` comes from the articles' sequence, so the feed orders deletions among other
    changes. `restored_at` set means `corpus restore` lifted the takedown: ingest may bring
    the article back, and the row stays, so the deletion's revision is never reused.
    """

    __table_args__ = (Index("ix_takedown_revision", "revision", unique=True),)

    article_id: int = Field(
        sa_column=Column("article_id", Id, primary_key=True, autoincrement=False)
    )
    source_id: int = Field(sa_column=Column("source_id", BigInteger, nullable=False))
    revision: int = Field(sa_column=Column("revision", BigInteger, nullable=False))
    deleted_at: datetime = Field(sa_column=Column("deleted_at", UTCDateTime, nullable=False))
    # Why (a court order, a retraction): for operators only, never served.
    reason: str | None = Field(default=None, sa_column=Column("reason", Text, nullable=True))
    restored_at: datetime | None = Field(
        default=None, sa_column=Column("restored_at", UTCDateTime, nullable=True)
    )


class CorpusMeta(SQLModel, table=True):
    """Facts about this database itself, set by migrations: `database_id` names it, so a
    search index built from another database is never served (app/search/index.py)."""

    __tablename__ = "corpus_meta"

    key: str = Field(sa_column=Column("key", Text, primary_key=True))
    value: str = Field(sa_column=Column("value", Text, nullable=False))


DATABASE_ID_KEY = "database_id"
# The secret that signs pagination cursors, random per database (migration 0008), so a
# cursor cannot be forged by anyone who has only read our source.
CURSOR_SECRET_KEY = "cursor_secret"


class ApiKey(SQLModel, table=True):
    """A client's API key (app/api/auth.py). Only a hash of the key is stored: the key
    itself is shown once, by `corpus keys create`. `prefix` is its public part, which
    tells keys apart in lists and logs."""

    __tablename__ = "api_key"

    key_id: int | None = Field(
        default=None, sa_column=Column("key_id", Integer, primary_key=True, autoincrement=True)
    )
    prefix: str = Field(sa_column=Column("prefix", Text, nullable=False, unique=True))
    key_hash: str = Field(sa_column=Column("key_hash", Text, nullable=False, unique=True))
    name: str = Field(sa_column=Column("name", Text, nullable=False))
    # In the `limits` library's notation: "600/minute", "10/second", "5000/day".
    rate: str = Field(sa_column=Column("rate", Text, nullable=False))
    created_at: datetime = Field(sa_column=Column("created_at", UTCDateTime, nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column("expires_at", UTCDateTime, nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column("revoked_at", UTCDateTime, nullable=True)
    )
    # Usage, written behind in batches by each server (never once per request).
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column("last_used_at", UTCDateTime, nullable=True)
    )
    requests_total: int = Field(
        default=0, sa_column=Column("requests_total", BigInteger, nullable=False)
    )
    # Requests on `usage_day` (UTC, ISO date): a new day starts the count again.
    requests_today: int = Field(
        default=0, sa_column=Column("requests_today", BigInteger, nullable=False)
    )
    usage_day: str | None = Field(default=None, sa_column=Column("usage_day", Text, nullable=True))


# Core views of the tables, for SQL built without the ORM (bulk writes, keyset pages).
article_table: Table = Article.__table__  # type: ignore[attr-defined]
source_table: Table = Source.__table__  # type: ignore[attr-defined]
meta_table: Table = CorpusMeta.__table__  # type: ignore[attr-defined]
api_key_table: Table = ApiKey.__table__  # type: ignore[attr-defined]
takedown_table: Table = Takedown.__table__  # type: ignore[attr-defined]
