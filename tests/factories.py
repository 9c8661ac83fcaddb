"""Valid records, rows and clients with defaults, so a test states only what it cares about."""

import itertools
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app import meta as meta_queries
from app.db import make_engine
from app.ingest.records import ArticleIn, Located
from app.ingest.validate import check
from app.ingest.writer import BatchCounts, write_batches
from app.main import create_app
from app.search.sync import newest_revision
from app.settings import Settings
from tests.databases import clone, drop

# The news fields every list item carries (null when the article has none).
NEWS_KEYS = frozenset({"published_at", "url", "author"})
SEED_FILE = Path(__file__).resolve().parents[1] / "seeds" / "000_8f258d90936aba6f.txt"
# A small corpus with gaps in its ids, three sources, and the real seed article.
CORPUS_IDS = [i * 7 + (i % 3) for i in range(1, 121)]
CORPUS_SOURCES = (2, 5, 7)

_ids = itertools.count(1)


def record(
    article_id: int | None = None,
    source_id: int = 2,
    title: str | None = None,
    content: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A record as a corpus file would hold it."""
    article_id = article_id if article_id is not None else next(_ids)
    return {
        "title": title if title is not None else f"Article number {article_id}",
        "content": content if content is not None else f"Body of article {article_id}. " * 20,
        "source_id": source_id,
        "article_id": article_id,
        **extra,
    }


def article_in(rec: dict[str, Any]) -> ArticleIn:
    """`rec` validated by ingest's own rules (news fields included); a bad record fails."""
    checked = check(Located("test", 1, rec, b""))
    assert not isinstance(checked, str), checked
    return checked


def add_articles(engine: Engine, records: Iterable[dict[str, Any]]) -> BatchCounts:
    """Write records through the real writer; the summed counts."""
    inserted = updated = unchanged = 0
    for counts in write_batches(engine, (article_in(r) for r in records), batch_size=500):
        inserted += counts.inserted
        updated += counts.updated
        unchanged += counts.unchanged
    return BatchCounts(inserted, updated, unchanged)


# The seeded corpus's bylines, and its dates: every third day of 2016 from 08:00 UTC, but
# for every tenth article, which has none.
CORPUS_AUTHORS = ("Jane Doe", "John Roe", "Doe, Jane")
CORPUS_FIRST_DATE = datetime(2016, 1, 1, 8, 0, tzinfo=UTC)


def write_articles(database_url: str, records: Iterable[dict[str, Any]]) -> BatchCounts:
    """`records` written into the database at `database_url` through the real writer, on an
    engine of its own that is gone afterwards."""
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        return add_articles(engine, records)
    finally:
        engine.dispose()


def corpus_date(n: int) -> datetime | None:
    """The publication date of the seeded corpus's n-th record (None: undated)."""
    return None if n % 10 == 9 else CORPUS_FIRST_DATE + timedelta(days=3 * n)


def written_database(
    template_url: str, folder: Path, records: Iterable[dict[str, Any]]
) -> Iterator[str]:
    """A copy of the template holding `records`, written through the real writer and
    analysed, for a module's read-only tests; dropped after them (use with `yield from`)."""
    url = clone(template_url, folder)
    engine = make_engine(Settings(database_url=url), pooled=False)
    add_articles(engine, records)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE article"))
    engine.dispose()
    yield url
    drop(url)


def large_record(article_id: int, megabytes: int, *, word: str = "palmyra") -> dict[str, Any]:
    """A record whose body is `megabytes` MB of plain sentences, `word` in every one."""
    sentence = f"The ancient city of {word.capitalize()} stood in the desert for centuries. "
    return record(
        article_id,
        title=f"{word.capitalize()} at great length",
        content=sentence * (megabytes * 1_000_000 // len(sentence)),
    )


def corpus_records() -> list[dict[str, Any]]:
    """The records of the shared seeded corpus (CORPUS_IDS over CORPUS_SOURCES), with
    bylines, urls and dates (some undated)."""
    records = []
    for n, article_id in enumerate(CORPUS_IDS):
        news: dict[str, Any] = {
            "author": CORPUS_AUTHORS[n % 3],
            "url": f"https://news.example/{article_id}",
        }
        if (published := corpus_date(n)) is not None:
            news["published_at"] = published.isoformat().replace("+00:00", "Z")
        records.append(
            record(article_id, source_id=CORPUS_SOURCES[n % 3], title=f"Title {n:03d}", **news)
        )
    return records


# Tests write and then search at once: their servers look for new writes this often.
TEST_INDEX_POLL_S = 0.02
INDEX_WAIT_S = 20.0


@asynccontextmanager
async def make_client(
    database_url: str, *, wait_for_index: bool = True, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on `database_url`, with `settings` over the defaults, once its
    search index has caught up (unless `wait_for_index` is off). An unexpected error in the
    app is raised in the test."""
    settings.setdefault("index_poll_s", TEST_INDEX_POLL_S)
    app = create_app(Settings(database_url=database_url, **settings))
    async with _client(app, raise_app_exceptions=True, wait_for_index=wait_for_index) as c:
        yield c


def client_for(app: FastAPI) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client of `app`, served as uvicorn would: an unexpected error is the app's 500,
    not an exception in the test."""
    return _client(app, raise_app_exceptions=False, wait_for_index=True)


@asynccontextmanager
async def _client(
    app: FastAPI, *, raise_app_exceptions: bool, wait_for_index: bool
) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        if wait_for_index:
            await index_caught_up(app)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def index_caught_up(app: FastAPI) -> None:
    """Wait until the app's search index has applied every write committed so far."""
    try:
        target = newest_revision(app.state.engine)
    except SQLAlchemyError:
        return  # tests of an unreachable database: there is nothing to catch up with
    deadline = time.monotonic() + INDEX_WAIT_S
    followers = [app.state.follower]
    if getattr(app.state, "vector_follower", None) is not None:
        followers.append(app.state.vector_follower)  # search by meaning is on
    for follower in followers:
        while True:
            status = follower.status()
            if status.ready and status.index_revision >= target:
                break
            assert time.monotonic() < deadline, f"an index did not catch up: {status}"
            await anyio.sleep(TEST_INDEX_POLL_S)


async def search_caught_up(client: httpx.AsyncClient, database_url: str) -> None:
    """Wait until the client's server has indexed every write committed so far: a search
    sees a write within a poll interval, not at once."""
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        target = newest_revision(engine)
    finally:
        engine.dispose()
    deadline = time.monotonic() + INDEX_WAIT_S
    while True:
        ready = (await client.get("/readyz")).json()
        indexes = [ready.get("search_index") or {}]
        if ready.get("vector_index") is not None:
            indexes.append(ready["vector_index"])  # search by meaning is on
        if all(i.get("state") == "ready" and i.get("revision", -1) >= target for i in indexes):
            return
        assert time.monotonic() < deadline, f"the search index did not catch up: {ready}"
        await anyio.sleep(TEST_INDEX_POLL_S)


def cursor_secret(database_url: str) -> str:
    """The database's own cursor secret (migration 0008), for tests that sign cursors."""
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        with Session(engine) as session:
            return meta_queries.cursor_secret(session)
    finally:
        engine.dispose()
