"""`corpus export` and /v1/export.{jsonl,csv} on both backends: ingestible output, filters,
streaming, and the round trip export → ingest into a fresh database → identical rows."""

import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from app import models
from app.cli import cli
from app.db import make_engine
from app.settings import Settings
from tests.databases import clone, drop
from tests.factories import make_client, record

COMPARED = (
    "article_id",
    "source_id",
    "title",
    "content",
    "extra",
    "content_hash",
    "word_count",
    "published_at",
    "url",
    "author",
)
RECORDS = [
    record(1, source_id=2, url="https://a", tags=["x", 1, 2.5], nested={"k": [None, True]}),
    record(
        2,
        source_id=5,
        title='Ünïcode, "quotes"\nand a newline',
        content="a,b\r\nc\td",
        published_at="2016-03-27T09:14:00.123456Z",
    ),
    record(3, source_id=2, content=""),
    record(40, source_id=7, author="Zoë", extra_id=9),
]


def rows(engine: Engine) -> list[tuple[Any, ...]]:
    article = models.article_table
    with engine.connect() as c:
        stmt = select(*(article.c[n] for n in COMPARED)).order_by(article.c.article_id)
        return [tuple(r) for r in c.execute(stmt)]


def cli_run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def loaded(database_url: str, tmp_path: Path) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    cli_run("ingest", "--database-url", database_url, str(path))
    return database_url


@pytest.fixture
def fresh_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = clone(template_url, tmp_path_factory.mktemp("fresh"))
    yield url
    drop(url)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_ingest_into_a_fresh_database_gives_identical_rows(
    loaded: str, fresh_url: str, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"export.{fmt}"
    cli_run("export", "--database-url", loaded, "--format", fmt, "-o", str(out))
    cli_run("ingest", "--database-url", fresh_url, str(out))
    original = make_engine(Settings(database_url=loaded), pooled=False)
    copy = make_engine(Settings(database_url=fresh_url), pooled=False)
    assert rows(copy) == rows(original)
    original.dispose()
    copy.dispose()


def test_jsonl_lines_are_the_records_as_they_came_in(loaded: str) -> None:
    result = cli_run("export", "--database-url", loaded)
    assert [json.loads(line) for line in result.stdout.splitlines()] == RECORDS


def test_csv_has_the_pinned_columns_and_extra_as_json(loaded: str) -> None:
    result = cli_run("export", "--database-url", loaded, "--format", "csv", "--source-id", "2")
    table = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert list(table[0]) == [
        "article_id",
        "source_id",
        "title",
        "content",
        "published_at",
        "url",
        "author",
        "extra",
    ]
    assert [r["article_id"] for r in table] == ["1", "3"]
    assert json.loads(table[0]["extra"]) == {"tags": ["x", 1, 2.5], "nested": {"k": [None, True]}}
    assert (table[0]["url"], table[0]["published_at"], table[0]["author"]) == ("https://a", "", "")
    assert table[1]["extra"] == ""


@pytest.mark.anyio
async def test_http_export_streams_the_same_bytes_as_the_cli(
    loaded: str, seeded_client: httpx.AsyncClient
) -> None:
    for fmt, media in (("jsonl", "application/x-ndjson"), ("csv", "text/csv; charset=utf-8")):
        expected = cli_run("export", "--database-url", loaded, "--format", fmt).stdout_bytes
        async with seeded_client.stream("GET", f"/v1/export.{fmt}") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == media
            assert "content-length" not in response.headers  # streamed, not built whole
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
        assert body == expected


@pytest.mark.anyio
async def test_http_export_takes_the_list_filters(seeded_client: httpx.AsyncClient) -> None:
    response = await seeded_client.get(
        "/v1/export.jsonl", params={"source_id": [2, 7], "id_min": 2, "id_max": 100}
    )
    assert [json.loads(line)["article_id"] for line in response.text.splitlines()] == [3, 40]
    response = await seeded_client.get("/v1/export.jsonl", params={"ids": "40,1"})
    assert [json.loads(line)["article_id"] for line in response.text.splitlines()] == [1, 40]
    bad = await seeded_client.get("/v1/export.csv", params={"id_min": 0})
    assert bad.status_code == 422


@pytest.fixture
async def seeded_client(loaded: str) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(loaded) as c:
        yield c
