"""Ingest of the news fields (publication date, url, byline): each name feeds use, each date
format, first name wins, bad values rejected with their line while the rest loads, a change
to one of them is an update, `--map` overrides; and migration 0009's fill and its downgrade.
Through `corpus ingest` on both backends."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from app import models
from app.cli import cli
from app.db import downgrade, migrate
from app.ingest.news_fields import AUTHOR_NAMES, PUBLISHED_NAMES, URL_NAMES
from app.ingest.records import Located
from app.ingest.validate import check, record_hash
from tests.factories import record

WHEN = datetime(2016, 3, 27, 9, 14, tzinfo=UTC)
SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_8f258d90936aba6f.txt"


def run(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["ingest", "--database-url", database_url, "-q", *args])


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def rows(engine: Engine) -> dict[int, Any]:
    with engine.connect() as c:
        return {r.article_id: r for r in c.execute(select(models.article_table)).all()}


def checked(**fields: Any) -> Any:
    result = check(Located("f", 1, record(1, **fields), b""))
    assert not isinstance(result, str), result
    return result


@pytest.mark.parametrize("name", PUBLISHED_NAMES)
def test_each_date_name_is_read_and_leaves_extra(name: str) -> None:
    result = checked(**{name: "2016-03-27T09:14:00Z", "lang": "en"})
    assert result.published_at == WHEN
    assert orjson.loads(result.extra) == {"lang": "en"}


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("2016-03-27T09:14:00Z", WHEN),
        ("2016-03-27T11:14:00+02:00", WHEN),
        ("2016-03-27T09:14:00.250000Z", WHEN.replace(microsecond=250000)),
        ("2016-03-27 09:14:00", WHEN),  # no offset: UTC
        ("2016-03-27T09:14", WHEN),
        ("2016-03-27", datetime(2016, 3, 27, tzinfo=UTC)),  # a date alone: midnight UTC
        ("Sun, 27 Mar 2016 09:14:00 GMT", WHEN),  # RFC 2822 as RSS writes it
        ("Sun, 27 Mar 2016 10:14:00 +0100", WHEN),
        ("27 Mar 2016 09:14:00 -0000", WHEN),
        (1459070040, WHEN),  # Unix seconds
        (1459070040000, WHEN),  # Unix milliseconds
        (1459070040.5, WHEN.replace(microsecond=500000)),
        ("1459070040", WHEN),  # as a CSV cell holds it
    ],
)
def test_each_date_format_is_read_in_utc(value: object, moment: datetime) -> None:
    assert checked(published_at=value).published_at == moment


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"date": "yesterday"},
            'date is not a date (ISO 8601, RFC 2822 or Unix time): "yesterday"',
        ),
        (
            {"pubDate": "2016-02-30"},
            'pubDate is not a date (ISO 8601, RFC 2822 or Unix time): "2016-02-30"',
        ),
        ({"published_at": True}, "published_at is not a date string or a Unix time: true"),
        ({"published": [2016]}, "published is not a date string or a Unix time: [2016]"),
        ({"url": 5}, "url must be a string, got 5"),
        ({"webUrl": "x" * 2049}, "webUrl is longer than 2048 bytes"),
        (
            {"author": {"role": "x"}},
            "author must be a string, a list of names or an object with a name",
        ),
        ({"authors": ["A", 3]}, 'authors must be a list of names, got ["A",3]'),
        ({"byline": "x" * 501}, "byline is longer than 500 characters"),
        ({"author": "a\x00b"}, "author contains a NUL character"),
    ],
)
def test_a_bad_news_field_is_a_reason_naming_the_field_and_value(
    fields: dict[str, Any], reason: str
) -> None:
    assert check(Located("f", 1, record(1, **fields), b"")) == reason


def test_the_first_name_present_wins_and_the_others_stay_in_extra() -> None:
    result = checked(
        date="2001-01-01", pubDate="Sun, 27 Mar 2016 09:14:00 GMT", link="https://l", web_url="w"
    )
    assert result.published_at == WHEN
    assert result.url == "w"
    assert orjson.loads(result.extra) == {"date": "2001-01-01", "link": "https://l"}


def test_a_null_or_blank_value_counts_as_absent() -> None:
    result = checked(published_at=None, date="2016-03-27T09:14:00Z", url="", author="  ")
    assert (result.published_at, result.url, result.author) == (WHEN, None, None)
    assert result.extra is None  # our own names are consumed, even empty


@pytest.mark.parametrize(
    ("fields", "byline"),
    [
        ({"author": "Jane Doe"}, "Jane Doe"),
        ({"byline": "By Jane Doe"}, "By Jane Doe"),
        ({"byline": {"original": "By Jane Doe", "person": []}}, "By Jane Doe"),  # the NYT's
        ({"authors": ["Jane Doe", "John Roe"]}, "Jane Doe, John Roe"),
        ({"author": [{"@type": "Person", "name": "Jane Doe"}]}, "Jane Doe"),  # schema.org
    ],
)
def test_bylines_are_read_from_strings_objects_and_lists(
    fields: dict[str, Any], byline: str
) -> None:
    result = checked(**fields)
    assert result.author == byline
    assert result.extra is None
    assert set(fields) <= set(AUTHOR_NAMES)


@pytest.mark.parametrize("name", URL_NAMES)
def test_each_url_name_is_read(name: str) -> None:
    assert checked(**{name: "https://news.example/a"}).url == "https://news.example/a"


def test_a_record_without_news_fields_keeps_the_digest_it_always_had() -> None:
    result = checked(lang="en")
    assert result.content_hash == record_hash(
        2, "Article number 1", record(1)["content"], {"lang": "en"}
    )


def test_the_seed_loads_as_before_with_three_nulls(database_url: str, engine: Engine) -> None:
    assert run(database_url, str(SEED)).exit_code == 0
    (row,) = rows(engine).values()
    assert (row.published_at, row.url, row.author) == (None, None, None)
    assert row.extra is None


def test_a_bad_date_rejects_its_record_with_file_and_line_and_the_rest_loads(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            record(1, pubDate="Sun, 27 Mar 2016 09:14:00 GMT"),
            record(2, pubDate="the day before"),
            record(3, published_at=1459070040),
        ],
    )
    result = run(database_url, str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f'{path}:2: pubDate is not a date (ISO 8601, RFC 2822 or Unix time): "the day before"'
    )
    stored = rows(engine)
    assert sorted(stored) == [1, 3]
    assert stored[1].published_at == stored[3].published_at == WHEN


def test_a_change_to_a_news_field_alone_is_an_update_with_a_new_revision(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    first = [record(1, date="2016-03-27"), record(2, url="https://a"), record(3, author="A")]
    run(database_url, str(write_jsonl(tmp_path / "a.jsonl", first)))
    before = rows(engine)
    again = run(database_url, "--json", str(write_jsonl(tmp_path / "b.jsonl", first)))
    assert orjson.loads(again.stdout)["unchanged"] == 3
    changed = [
        record(1, date="2016-03-28"),
        record(2, url="https://b"),
        record(3, author="B"),
    ]
    result = run(database_url, "--json", str(write_jsonl(tmp_path / "c.jsonl", changed)))
    assert orjson.loads(result.stdout)["updated"] == 3
    after = rows(engine)
    assert after[1].published_at == datetime(2016, 3, 28, tzinfo=UTC)
    assert (after[2].url, after[3].author) == ("https://b", "B")
    assert all(after[i].revision > max(r.revision for r in before.values()) for i in (1, 2, 3))


def test_map_overrides_which_field_is_the_date(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl", [record(1, date="2001-01-01", first_seen="2016-03-27T09:14:00Z")]
    )
    assert run(database_url, "--map", "first_seen=published_at", str(path)).exit_code == 0
    row = rows(engine)[1]
    assert row.published_at == WHEN
    assert row.extra == {"date": "2001-01-01"}


def _insert_at_0008(engine: Engine, article_id: int, extra: dict[str, Any] | None) -> None:
    """A row as revision 0008's ingest wrote it: every non-required field in `extra`."""
    content = f"body {article_id}"
    digest = record_hash(2, "t", content, extra)
    with engine.begin() as c:
        c.execute(text("INSERT INTO source (source_id) VALUES (2) ON CONFLICT DO NOTHING"))
        c.execute(
            text(
                "INSERT INTO article (article_id, source_id, title, content, word_count, excerpt,"
                " revision, extra, content_hash, ingested_at, updated_at) VALUES (:id, 2, 't',"
                " :content, 2, :content, :id, :extra, :hash, :now, :now)"
            ),
            {
                "id": article_id,
                "content": content,
                "extra": None if extra is None else orjson.dumps(extra).decode(),
                "hash": digest,
                "now": datetime(2020, 1, 1, tzinfo=UTC),
            },
        )


def test_0009_fills_the_fields_from_extra_and_its_downgrade_puts_them_back(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    downgrade(database_url, "0008")
    _insert_at_0008(engine, 1, {"date": "Sun, 27 Mar 2016 09:14:00 GMT", "lang": "en"})
    _insert_at_0008(engine, 2, {"webUrl": "https://g", "byline": {"original": "By A"}})
    _insert_at_0008(engine, 3, {"date": "not a date", "author": "kept"})
    _insert_at_0008(engine, 4, None)
    migrate(database_url)
    stored = rows(engine)
    assert (stored[1].published_at, stored[1].extra) == (WHEN, {"lang": "en"})
    assert (stored[2].url, stored[2].author, stored[2].extra) == ("https://g", "By A", None)
    # Ingest would have rejected row 3: it stays as it was, its values still in extra.
    assert (stored[3].published_at, stored[3].author) == (None, None)
    assert stored[3].extra == {"date": "not a date", "author": "kept"}
    assert stored[3].revision == 3
    assert stored[4].revision == 4
    assert min(stored[1].revision, stored[2].revision) > 4
    # The stored digest is ingest's: re-ingesting the records finds them unchanged.
    records = [
        {
            **record(1, title="t", content="body 1"),
            "date": "Sun, 27 Mar 2016 09:14:00 GMT",
            "lang": "en",
        },
        {
            **record(2, title="t", content="body 2"),
            "webUrl": "https://g",
            "byline": {"original": "By A"},
        },
        record(4, title="t", content="body 4"),
    ]
    result = run(database_url, "--json", str(write_jsonl(tmp_path / "a.jsonl", records)))
    assert orjson.loads(result.stdout)["unchanged"] == 3, result.stdout
    downgrade(database_url, "0008")
    with engine.connect() as c:
        back = {
            i: (orjson.loads(e) if isinstance(e, str) else e)
            for i, e in c.execute(text("SELECT article_id, extra FROM article"))
        }
    assert back[1] == {"lang": "en", "published_at": "2016-03-27T09:14:00Z"}
    assert back[2] == {"url": "https://g", "author": "By A"}
    assert back[3] == {"date": "not a date", "author": "kept"}
    migrate(database_url)
    again = rows(engine)
    assert (again[1].published_at, again[2].url, again[2].author) == (WHEN, "https://g", "By A")
