"""`corpus ingest` end to end through CliRunner, on both backends: rows, stderr, exit status."""

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from app import models
from app.cli import cli
from app.db import downgrade
from app.ingest import prefetch
from app.ingest.fields import FieldMap
from app.ingest.pipeline import Summary
from app.ingest.progress import Progress
from tests.factories import article_in, record

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_8f258d90936aba6f.txt"
SUMMARY_KEYS = {
    "read",
    "inserted",
    "updated",
    "unchanged",
    "rejected",
    "suppressed",
    "seconds",
    "records_per_second",
}


@pytest.fixture(params=["in-process reader", "child-process reader"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the stages before the writer in this process, then in a forked child
    (app/ingest/prefetch.py), which the CLI picks by itself for large loads."""
    forked = request.param == "child-process reader"
    monkeypatch.setattr(prefetch, "MIN_INPUT_BYTES", 0 if forked else 1 << 62)
    return str(request.param)


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
        "suppressed": 0,
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
    assert after[1].excerpt == "new body"  # derived fields follow the body
    assert after[1].ingested_at == first[1].ingested_at
    assert after[1].updated_at > first[1].updated_at
    assert after[2].updated_at == first[2].updated_at


def test_bad_records_are_reported_with_file_and_line_and_the_rest_load(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
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


def test_a_record_over_the_content_limit_is_rejected_with_its_size_and_the_rest_load(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    big = "é" * 600_000  # 1.2 MB of UTF-8 in 600,000 characters
    path = write_jsonl(tmp_path / "big.jsonl", [record(1), record(2, content=big), record(3)])
    result = run(database_url, "--json", "--quiet", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:2: content is 1,200,000 bytes, over the limit of 1,048,576 (--max-content-bytes)"
    ]
    assert sorted(rows(engine)) == [1, 3]
    raised = run(database_url, "--json", "--max-content-bytes", "1200000", str(path))
    assert raised.exit_code == 0, raised.stderr
    assert rows(engine)[2].content == big


def test_the_content_limit_is_a_setting(
    database_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORPUS_INGEST_MAX_CONTENT_BYTES", "100")
    path = write_jsonl(
        tmp_path / "a.jsonl", [record(1, content="x" * 100), record(2, content="x" * 101)]
    )
    result = run(database_url, str(path))
    assert result.exit_code == 1
    assert "a.jsonl:2: content is 101 bytes, over the limit of 100" in result.stderr
    assert sorted(rows(engine)) == [1]


def test_duplicate_ids_in_one_file_load_once_last_wins(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
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
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1, lang="en", tags=["a", 1])])
    run(database_url, str(path))
    assert rows(engine)[1].extra == {"lang": "en", "tags": ["a", 1]}


def test_human_summary_goes_to_stderr(database_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1)])
    result = run(database_url, str(path))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "read 1, inserted 1, updated 0, unchanged 0, rejected 0" in result.stderr


def test_missing_path_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run(database_url, str(tmp_path / "nope.json"))
    assert result.exit_code == 2


def test_a_database_at_an_older_revision_is_exit_2_asking_for_migrate(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    downgrade(database_url, "0007")
    path = write_jsonl(tmp_path / "a.jsonl", [record(1)])
    result = run(database_url, "--quiet", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the database at ")
    assert "is at revision 0007" in result.stderr
    assert result.stderr.rstrip().endswith("run `corpus migrate`")


def test_unreachable_database_is_exit_2() -> None:
    result = run("postgresql+psycopg://postgres@127.0.0.1:1/none", str(SEED))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: database error:")


@pytest.mark.parametrize("batch_size", ["0", "abc"])
def test_bad_batch_size_is_a_usage_error(database_url: str, batch_size: str) -> None:
    assert run(database_url, "--batch-size", batch_size, str(SEED)).exit_code == 2


def test_dry_run_writes_nothing_and_reports_what_a_real_run_would(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    write_jsonl(tmp_path / "old.jsonl", [record(1), record(2)])
    run(database_url, str(tmp_path / "old.jsonl"))
    before = rows(engine)
    path = tmp_path / "new.jsonl"
    path.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [record(1), record(2, content="new"), record(3), record(3, title="again")]
        )
        + "{broken\n"
    )
    dry = run(database_url, "--json", "--dry-run", str(path))
    assert dry.exit_code == 1  # as a real run: one record would be rejected
    assert rows(engine) == before
    assert source_names(engine) == {2: None}
    real = run(database_url, "--json", str(path))
    assert real.exit_code == 1
    keys = ("read", "inserted", "updated", "unchanged", "rejected")
    assert [summary(dry)[k] for k in keys] == [summary(real)[k] for k in keys] == [5, 1, 2, 1, 1]


def test_dry_run_counts_a_record_repeated_across_batches_once(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(1), record(2), record(1, content="x")])
    data = summary(run(database_url, "--json", "--dry-run", "--batch-size", "1", str(path)))
    assert (data["inserted"], data["updated"], data["unchanged"]) == (2, 1, 0)
    assert rows(engine) == {}


def test_dry_run_keeps_each_batchs_ids_in_one_scratch_transaction(engine: Engine) -> None:
    """The ids a dry run has seen go to its scratch file a batch at a time, not an insert
    and a sync each (a dry run of 200,000 records took 42 s that way, 5 s this way)."""
    from app.ingest.stores import DryRunStore

    store = DryRunStore()
    statements: list[str] = []
    store.seen.set_trace_callback(statements.append)
    try:
        with engine.connect() as connection:
            for start in (1, 4):
                batch = [article_in(record(i)) for i in range(start, start + 3)]
                assert store.write(connection, batch).inserted == 3
            again = store.write(connection, [article_in(record(2, content="new"))])
    finally:
        store.close()
    assert (again.inserted, again.updated) == (0, 1)  # seen in the first batch
    assert sum(s.startswith("BEGIN") for s in statements) == 3  # one per batch
    assert sum(s.startswith("INSERT") for s in statements) == 7


def test_rejects_file_holds_file_line_index_reason_and_raw(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    lines = tmp_path / "a.jsonl"
    lines.write_text(json.dumps(record(1)) + "\n\n{broken\n" + json.dumps(record(2, title="")))
    array = tmp_path / "b.json"
    array.write_text(json.dumps([record(3), {"article_id": "x"}], indent=1))
    rejects = tmp_path / "rejects.jsonl"
    result = run(database_url, "--rejects", str(rejects), str(lines), str(array))
    assert result.exit_code == 1
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert entries == [
        {"file": str(lines), "line": 3, "reason": entries[0]["reason"], "raw": "{broken\n"},
        {
            "file": str(lines),
            "line": 4,
            "reason": "title must not be empty",
            "raw": json.dumps(record(2, title="")),
        },
        {
            "file": str(array),
            "line": 8,
            "index": 1,
            "reason": "article_id must be an integer, got a string",
            "raw": entries[2]["raw"],
        },
    ]
    assert entries[0]["reason"].startswith("malformed JSON")
    assert json.loads(entries[2]["raw"]) == {"article_id": "x"}
    assert sorted(rows(engine)) == [1, 3]


def test_field_mapping_renames_and_names_sources(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "sources.json").write_text('{"4": "BBC"}')
    run(database_url, "--sources", str(tmp_path / "sources.json"), str(SEED))
    kaggle = [
        {"id": 10, "publication": "BBC", "title": "a", "content": "x", "lang": "en"},
        {"id": 11, "publication": "Breitbart", "title": "b", "content": "y"},
        {"id": 12, "publication": 2, "title": "c", "content": "z"},
        {"id": 13, "publication": "Breitbart", "title": "d", "content": "w"},
        {"id": 14, "article_id": 99, "publication": "BBC", "title": "e", "content": "v"},
    ]
    path = write_jsonl(tmp_path / "kaggle.jsonl", kaggle)
    result = run(
        database_url, "--map", "id=article_id", "--map", "publication=source_id", str(path)
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:5: both id and article_id are present (--map id=article_id)"
    )
    stored = rows(engine)
    assert {i: stored[i].source_id for i in (10, 11, 12, 13)} == {10: 4, 11: 5, 12: 2, 13: 5}
    assert stored[10].extra == {"lang": "en"}
    assert source_names(engine) == {2: None, 4: "BBC", 5: "Breitbart"}


def test_field_renames_without_source_names_run_in_either_reader(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    records = [
        {"id": 1, "source_id": 2, "title": "a", "content": "x"},
        {"id": 2, "article_id": 7, "source_id": 2, "title": "b", "content": "y"},
        {"id": 3, "source_id": 2, "title": "c", "content": "z", "lang": "en"},
    ]
    path = write_jsonl(tmp_path / "renamed.jsonl", records)
    result = run(database_url, "--map", "id=article_id", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:2: both id and article_id are present (--map id=article_id)"
    )
    stored = rows(engine)
    assert sorted(stored) == [1, 3]
    assert stored[3].extra == {"lang": "en"}


class _BrokenMap(FieldMap):
    def apply(self, values: Any, on_reject: Any) -> Any:
        raise RuntimeError("mapping exploded")


def test_a_failing_reader_process_fails_the_run_and_keeps_earlier_rejects(
    engine: Engine, tmp_path: Path
) -> None:
    from app.ingest.pipeline import ingest

    path = write_jsonl(tmp_path / "a.jsonl", [record(1)])
    rejected: list[object] = []
    with pytest.raises(ChildProcessError, match="mapping exploded"):
        ingest(
            [path],
            engine,
            on_reject=rejected.append,
            field_map=_BrokenMap((("x", "y"),)),
            child_reader=True,
        )
    assert rows(engine) == {}


@pytest.mark.parametrize("spec", ["id", "=article_id", "id=", "a=x,a=y"])
def test_bad_field_map_is_a_usage_error(database_url: str, spec: str) -> None:
    args = [a for s in spec.split(",") for a in ("--map", s)]
    result = run(database_url, *args, str(SEED))
    assert result.exit_code == 2
    assert "--map" in result.stderr


def test_csv_files_load_with_typed_ids_and_extra(
    database_url: str, engine: Engine, tmp_path: Path, reader: str
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "article_id,source_id,title,content,extra\n"
        '1,2,"A, title","multi\nline",\n'
        '2,3,B,body,"{""lang"": ""en""}"\n'
        "x,3,C,body,\n"
    )
    result = run(database_url, str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:5: article_id must be an integer, got a string"
    )
    stored = rows(engine)
    assert (stored[1].title, stored[1].content, stored[1].extra) == (
        "A, title",
        "multi\nline",
        None,
    )
    assert stored[2].extra == {"lang": "en"}


def test_quiet_run_prints_no_progress(database_url: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [record(i) for i in range(1, 30)])
    result = run(database_url, "--quiet", str(path))
    assert result.exit_code == 0
    assert "progress" not in result.stderr


def test_progress_writes_plain_lines_off_a_terminal_and_a_bar_on_one() -> None:
    tally = Summary(inserted=450, rejected=50, bytes_read=250, bytes_total=1000)
    plain = io.StringIO()
    Progress(plain, tty=False, interval_s=0).update(tally, force=True)
    assert plain.getvalue().startswith("progress: 500 records, ")
    assert ", 25%, ETA " in plain.getvalue()
    bar = io.StringIO()
    progress = Progress(bar, tty=True)
    progress.update(tally, force=True)
    progress.message("a.jsonl:3: title must not be empty")
    progress.close()
    text = bar.getvalue()
    assert text.startswith("\r[######------------------]  25%  500 records  ")
    assert "\r\x1b[Ka.jsonl:3: title must not be empty\n" in text
    assert text.endswith("\r\x1b[K")


def test_a_load_checks_no_foreign_keys_but_leaves_none_unchecked(
    engine: Engine, tmp_path: Path
) -> None:
    """The writer turns SQLite's foreign-key checks off for its own connection only: every
    pooled connection afterwards checks them, and the loaded rows break none."""
    from sqlalchemy import text

    from app.ingest.pipeline import ingest

    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL checks foreign keys as it always does")
    path = write_jsonl(tmp_path / "a.jsonl", [record(i, source_id=i % 3 + 1) for i in range(1, 50)])
    ingest([path], engine, on_reject=print, child_reader=False)
    with engine.connect() as c:
        assert c.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert c.execute(text("PRAGMA foreign_key_check")).all() == []
        assert c.execute(text("SELECT count(*) FROM source")).scalar_one() == 3
    assert len(rows(engine)) == 49
