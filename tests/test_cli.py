"""What a new user meets at the `corpus` command, on both backends where a database is
involved: no database made by a command that reads, one made and migrated by ingest, gzip
by suffix, standard input, pipes that close, encodings, key secrets, and one line for
every fatal error."""

import gzip
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from app import models
from app.cli import cli
from app.db import make_engine
from app.settings import Settings
from tests.databases import BACKENDS, drop, pg_admin, pg_url
from tests.factories import add_articles, record

ROOT = Path(__file__).resolve().parents[1]
CORPUS = [sys.executable, "-c", "from app.cli import main; main()"]


def corpus(*args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin)


def one_line(result: Any) -> str:
    """The single line a fatal error prints; never a traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    text: str = lines[0]
    return text


def ids(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        article = models.article_table
        found = connection.execute(select(article.c.article_id).order_by(article.c.article_id))
        return [row[0] for row in found]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no database, as the working directory, and no database settings."""
    for name in ("CORPUS_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists but holds nothing (a new SQLite file does not exist yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new' / 'corpus.db'}"
        return
    name = f"corpus_empty_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    yield url
    drop(url)


@pytest.mark.parametrize(
    "command",
    [
        ["export", "-o", "x.csv", "--format", "csv"],
        ["index", "status"],
        ["index", "rebuild"],
        ["keys", "list"],
        ["keys", "create", "--name", "someone"],
        ["keys", "revoke", "abcd1234"],
        ["delete", "5"],
        ["restore", "5"],
        ["serve"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_command_that_reads_never_creates_a_database(elsewhere: Path, command: list[str]) -> None:
    line = one_line(corpus(*command))
    assert str(elsewhere / "data" / "corpus.db") in line
    assert "--database-url" in line
    assert "CORPUS_DATABASE_URL" in line
    assert list(elsewhere.iterdir()) == []  # no data/, no x.csv


def test_a_command_that_reads_an_empty_database_says_to_migrate(empty_url: str) -> None:
    if empty_url.startswith("sqlite"):
        Path(empty_url.removeprefix("sqlite:///")).parent.mkdir()
        Path(empty_url.removeprefix("sqlite:///")).touch()
    line = one_line(corpus("keys", "list", "--database-url", empty_url))
    assert "is empty: run `corpus migrate`" in line


def test_ingest_migrates_a_new_or_empty_database_first_and_says_so(
    empty_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(orjson.dumps(record(1)) + b"\n" + orjson.dumps(record(2)) + b"\n")
    result = corpus("ingest", "--quiet", "--database-url", empty_url, str(path))
    assert result.exit_code == 0, result.stderr
    assert "was empty: migrated it to revision" in result.stderr
    engine = make_engine(Settings(database_url=empty_url), pooled=False)
    assert ids(engine) == [1, 2]
    engine.dispose()
    again = corpus("ingest", "--quiet", "--database-url", empty_url, str(path))
    assert "migrated" not in again.stderr


def test_export_to_a_gz_name_is_gzip_that_ingest_reads_back(
    engine: Engine, database_url: str, empty_url: str, tmp_path: Path
) -> None:
    add_articles(engine, [record(i, source_id=2 + i % 2) for i in range(1, 30)])
    out = tmp_path / "s.jsonl.gz"
    exported = corpus("export", "--database-url", database_url, "-o", str(out))
    assert exported.exit_code == 0, exported.stderr
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert len(gzip.decompress(out.read_bytes()).splitlines()) == 29
    loaded = corpus("ingest", "--quiet", "--database-url", empty_url, str(out))
    assert loaded.exit_code == 0, loaded.stderr
    fresh = make_engine(Settings(database_url=empty_url), pooled=False)
    assert ids(fresh) == ids(engine)
    fresh.dispose()


def test_export_writes_what_its_file_name_says_unless_told(
    engine: Engine, database_url: str, empty_url: str, tmp_path: Path
) -> None:
    add_articles(engine, [record(i) for i in range(1, 6)])
    by_name = tmp_path / "corpus.csv.gz"
    told = tmp_path / "told.csv"
    assert corpus("export", "--database-url", database_url, "-o", str(by_name)).exit_code == 0
    result = corpus("export", "--database-url", database_url, "--format", "jsonl", "-o", str(told))
    assert result.exit_code == 0, result.stderr
    header = gzip.decompress(by_name.read_bytes()).splitlines()[0]
    assert header.decode().startswith("article_id,source_id,title,content"), header
    assert orjson.loads(told.read_bytes().splitlines()[0])["article_id"] == 1
    loaded = corpus("ingest", "--quiet", "--database-url", empty_url, str(by_name))
    assert loaded.exit_code == 0, loaded.stderr
    fresh = make_engine(Settings(database_url=empty_url), pooled=False)
    assert ids(fresh) == ids(engine)
    fresh.dispose()


def test_a_closed_pipe_ends_an_export_quietly(engine: Engine, database_url: str) -> None:
    # Several chunks of several MB: far more than a pipe holds.
    add_articles(engine, [record(i, content="word " * 800) for i in range(1, 2001)])
    export = subprocess.Popen(
        [*CORPUS, "export", "--database-url", database_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert export.stdout is not None
    assert export.stdout.readline().startswith(b"{")  # `| head -1`
    export.stdout.close()
    _, errors = export.communicate(timeout=60)
    assert export.returncode == 128 + signal.SIGPIPE  # as a process SIGPIPE stopped
    assert errors == b""


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzipped"])
def test_ingest_dash_reads_standard_input(
    engine: Engine, database_url: str, compressed: bool
) -> None:
    lines = b"".join(orjson.dumps(r) + b"\n" for r in [record(7), {"article_id": 8}, record(9)])
    sent = gzip.compress(lines) if compressed else lines
    result = corpus("ingest", "--quiet", "--database-url", database_url, "-", stdin=sent)
    assert result.exit_code == 1  # one record rejected, the rest loaded
    assert result.stderr.splitlines()[0] == "-:2: missing source_id"
    assert ids(engine) == [7, 9]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""), ("utf-16-le", b""), ("utf-32", b"")],
)
def test_utf16_utf32_and_a_utf8_byte_order_mark_load(
    engine: Engine, database_url: str, tmp_path: Path, encoding: str, bom: bytes
) -> None:
    records = [record(1, title="Zoë in Łódź"), record(2, content="東京 and Ünïcode")]
    for name, text in (
        ("a.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)),
        ("b.json", json.dumps([record(3), record(4)], ensure_ascii=False, indent=2)),
    ):
        (tmp_path / name).write_bytes(bom + text.encode(encoding))
    result = corpus("ingest", "--quiet", "--database-url", database_url, str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert ids(engine) == [1, 2, 3, 4]
    article = models.article_table
    with engine.connect() as connection:
        title = connection.execute(select(article.c.title).where(article.c.article_id == 1))
        assert title.scalar_one() == "Zoë in Łódź"


def test_an_id_past_64_bits_is_out_of_range(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(
        '{"article_id": 18446744073709551616, "source_id": 2, "title": "t", "content": "c"}\n'
    )
    result = corpus("ingest", "--quiet", "--database-url", database_url, str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:1: article_id is out of range: it must be between 1 and 9223372036854775807"
    )


def keys(database_url: str, *args: str) -> Any:
    return corpus("keys", *args, "--database-url", database_url)


def test_revoking_by_the_whole_key_works_and_never_prints_the_secret(database_url: str) -> None:
    made = keys(database_url, "create", "--name", "partner", "--json")
    key = json.loads(made.stdout)["key"]
    secret = key.split("_", 2)[2]
    missing = keys(database_url, "revoke", key[:-1].replace(key.split("_")[1], "zzzz9999"))
    revoked = keys(database_url, "revoke", key)
    assert revoked.exit_code == 0, revoked.stderr
    assert "revoked" in revoked.stderr
    assert one_line(missing) == "error: No key with prefix zzzz9999."
    garbage = keys(database_url, "revoke", "not-a-key-" + secret)
    one_line(garbage)
    for result in (revoked, missing, garbage):
        assert secret not in result.stdout + result.stderr
    listed = keys(database_url, "list", "--json")
    assert json.loads(listed.stdout)[0]["state"] == "revoked"


def test_a_key_expiring_in_the_past_is_refused(database_url: str) -> None:
    line = one_line(keys(database_url, "create", "--name", "x", "--expires", "2020-01-31"))
    assert "in the past" in line
    assert json.loads(keys(database_url, "list", "--json").stdout) == []


def test_every_fatal_error_is_one_line_and_exit_2(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(orjson.dumps(record(1)) + b"\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = ["ingest", "--quiet", "--database-url", database_url, str(path)]
    one_line(corpus(*args, "--index-dir", str(blocker / "index")))  # the index's folder
    one_line(corpus(*args, "--rejects", str(blocker / "rejects.jsonl")))  # the disk
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    assert "database error" in one_line(corpus("keys", "list", "--database-url", unreachable))


def test_make_run_serves_on_the_port_it_is_given() -> None:
    planned = subprocess.run(
        ["make", "-n", "run", "PORT=18100"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "corpus serve --host 127.0.0.1 --port 18100" in planned
