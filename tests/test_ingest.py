"""`corpus ingest` end to end through CliRunner, on both backends: rows, stderr, exit status."""

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from app import models
from app.cli import cli
from tests.factories import record

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_8f258d90936aba6f.txt"
SUMMARY_KEYS = {
    "read",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "seconds",
    "records_per_second",
}


def run(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["ingest", "--database-url", database_url, *args])


def summary(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    assert set(data) == SUMMARY_KEYS
    return data


def rows(engine: Engine) -> dict[int, Any]:
    with engine.connect() as c:
        return {r.article_id: r for r in c.execute(select(models.article_table)).all()}


def source_names(engine: Engine) -> dict[int, str | None]:
    table = models.source_table
    with engine.connect() as c:
        return {r.source_id: r.name for r in c.execute(select(table.c.source_id, table.c.name))}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_seed_loads_byte_for_byte(database_url: str, engine: Engine) -> None:
    result = run(database_url, "--json", str(SEED))
    assert result.exit_code == 0, result.stderr
    assert summary(result) | {"seconds": 0, "records_per_second": 0} == {
        "read": 1,
        "inserted": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "seconds": 0,
        "records_per_second": 0,
    }
    expected = json.loads(json.loads(SEED.read_text()))
    stored = rows(engine)[166812]
    assert stored.content == expected["content"]
    assert stored.title == expected["title"]
    assert stored.source_id == 2
    assert stored.extra is None


def test_reingest_leaves_unchanged_rows_alone(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(i) for i in range(1, 51)])
    assert summary(run(database_url, "--json", str(path)))["inserted"] == 50
    before = rows(engine)
    again = summary(run(database_url, "--json", "--batch-size", "7", str(path)))
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 50)
    after = rows(engine)
    assert len(after) == 50
    assert [r.updated_at for r in after.values()] == [r.updated_at for r in before.values()]


def test_changed_record_is_updated_and_keeps_its_first_ingest_time(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "a.jsonl", [record(1), record(2)])
    run(database_url, str(tmp_path / "a.jsonl"))
    first = rows(engine)
    changed = write_jsonl(tmp_path / "b.jsonl", [record(1, content="new body"), record(2)])
    result = summary(run(database_url, "--json", str(changed)))
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 1, 1)
    after = rows(engine)
    assert after[1].content == "new body"
    assert after[1].ingested_at == first[1].ingested_at
    assert after[1].updated_at > first[1].updated_at
    assert after[2].updated_at == first[2].updated_at


def test_bad_records_are_reported_with_file_and_line_and_the_rest_load(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps(record(1))
        + "\n"
        + "{broken\n"
        + json.dumps(record(3, title=""))
        + "\n"
        + json.dumps(record(4))
        + "\n"
    )
    result = run(database_url, "--json", str(path))
    assert result.exit_code == 1
    data = summary(result)
    assert (data["read"], data["inserted"], data["rejected"]) == (4, 2, 2)
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{path}:2: malformed JSON")
    assert errors[1] == f"{path}:3: title must not be empty"
    assert sorted(rows(engine)) == [1, 4]


def test_duplicate_ids_in_one_file_load_once_last_wins(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [record(1, title="first"), record(1, title="second")])
    data = summary(run(database_url, "--json", str(path)))
    assert (data["read"], data["inserted"], data["updated"]) == (2, 1, 1)
    assert rows(engine)[1].title == "second"


def test_directory_with_sources_file_names_sources(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "a.jsonl", [record(1, source_id=2), record(2, source_id=5)])
    (tmp_path / "sources.json").write_text('{"2": "Reuters", "5": "BBC"}')
    assert run(database_url, str(tmp_path)).exit_code == 0
    assert source_names(engine) == {2: "Reuters", 5: "BBC"}
    assert sorted(rows(engine)) == [1, 2]


def test_sources_option_and_unknown_sources_get_bare_rows(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1, source_id=9)])
    names = tmp_path / "names.json"
    names.write_text('{"3": "AP"}')
    assert run(database_url, "--sources", str(names), str(path)).exit_code == 0
    assert source_names(engine) == {3: "AP", 9: None}


def test_extra_fields_are_stored_not_dropped(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1, url="https://x", tags=["a", 1])])
    run(database_url, str(path))
    assert rows(engine)[1].extra == {"url": "https://x", "tags": ["a", 1]}


def test_human_summary_goes_to_stderr(database_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1)])
    result = run(database_url, str(path))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "read 1, inserted 1, updated 0, unchanged 0, rejected 0" in result.stderr


def test_missing_path_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run(database_url, str(tmp_path / "nope.json"))
    assert result.exit_code == 2


def test_unmigrated_database_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1)])
    result = run(f"sqlite:///{tmp_path / 'empty.db'}", str(path))
    assert result.exit_code == 2
    assert "corpus migrate" in result.stderr


def test_unreachable_database_is_exit_2() -> None:
    result = run("postgresql+psycopg://postgres@127.0.0.1:1/none", str(SEED))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: database error:")


@pytest.mark.parametrize("batch_size", ["0", "abc"])
def test_bad_batch_size_is_a_usage_error(database_url: str, batch_size: str) -> None:
    assert run(database_url, "--batch-size", batch_size, str(SEED)).exit_code == 2
