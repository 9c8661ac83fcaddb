"""The child-process readers on their own: the same records and rejects as in-process, in
input order, whatever the number of readers and wherever slices end; an error reported in
order; and a reader closed mid-stream leaves no process behind."""

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from app import synth
from app.ingest import prefetch
from app.ingest import validate as validate_module
from app.ingest.prefetch import ChildReader
from app.ingest.readers import MappedReads
from app.ingest.records import ArticleIn, Located, Reject
from app.ingest.validate import validate


def _file(tmp_path: Path) -> Path:
    """300 lines: 298 records, a malformed line, an invalid record, and a malformed tail."""
    path = tmp_path / "a.jsonl"
    synth.write(path, 300, body_chars=(50, 200))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[10] = b"{not json\n"
    lines[150] = b'{"article_id": 0, "source_id": 1, "title": "t", "content": "c"}\n'
    path.write_bytes(b"".join(lines) + b"[unterminated\n")
    return path


def _events(reader: ChildReader) -> tuple[list[ArticleIn], list[Reject], list[str]]:
    records: list[ArticleIn] = []
    rejects: list[Reject] = []
    events: list[str] = []

    def on_reject(reject: Reject) -> None:
        rejects.append(reject)
        events.append(f"reject {reject.line}")

    for record in reader.records(on_reject):
        records.append(record)
        events.append(f"record {record.article_id}")
    return records, rejects, events


# 299 values are read (the malformed lines are not values): 7 leaves a part slice at the
# end, 13 and 23 divide it, so the last slice holds only the trailing reject.
@pytest.mark.parametrize("readers", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [7, 13, 23, 1000])
def test_child_readers_give_what_the_in_process_reader_gives(
    tmp_path: Path, readers: int, batch_size: int
) -> None:
    path = _file(tmp_path)
    expected_rejects: list[Reject] = []
    in_process = MappedReads([path], None, expected_rejects.append)
    expected = list(validate(in_process, expected_rejects.append))
    with ChildReader([path], None, batch_size, readers=readers) as reader:
        got, rejects, events = _events(reader)
    assert len(got) == 298
    assert got == expected
    assert rejects == expected_rejects
    assert [r.line for r in rejects] == [11, 151, 301]
    # A reject comes after every record of the slices before its own, and before its own
    # slice's records (each slice's rejects are reported before its records are written).
    ids = [v.value["article_id"] for v in MappedReads([path], None, print)]  # type: ignore[index]
    for line, position in (("11", 10), ("151", 149)):
        start = position // batch_size * batch_size
        at = events.index(f"reject {line}")
        assert {f"record {i}" for i in ids[:start]} <= set(events[:at])
        assert {f"record {i}" for i in ids[start:]}.isdisjoint(events[:at])
    assert reader.bytes_read == in_process.bytes_read > 0


# Slices of 7: the record at position 10 is in the second slice (the second child's of
# two), the one at 17 in the third (the first child's).
@pytest.mark.parametrize("position", [10, 17])
@pytest.mark.parametrize("readers", [1, 2])
def test_an_error_in_one_slice_is_raised_in_order_after_what_came_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readers: int, position: int
) -> None:
    path = _file(tmp_path)
    expected = list(validate(MappedReads([path], None, print), print))
    failing = expected[position].article_id
    real_check = validate_module.check

    def check(item: Located, max_content_bytes: int) -> Any:
        assert isinstance(item.value, dict)
        if item.value["article_id"] == failing:
            raise RuntimeError("validation exploded")
        return real_check(item, max_content_bytes)

    monkeypatch.setattr(prefetch, "check", check)  # the children are forked with it
    got: list[ArticleIn] = []
    rejects: list[Reject] = []
    with ChildReader([path], None, 7, readers=readers) as reader:
        records = reader.records(rejects.append)
        with pytest.raises(ChildProcessError, match="validation exploded"):
            got.extend(records)
    assert got == expected[: position // 7 * 7]  # whole slices; the failing one is not written
    assert [r.line for r in rejects] == [11]  # in the second slice, reported either way


def test_closing_mid_stream_ends_the_worker_processes(tmp_path: Path) -> None:
    path = _file(tmp_path)
    reader = ChildReader([path], None, batch_size=5, readers=2)
    records = reader.records(lambda _: None)
    next(records)
    workers = multiprocessing.active_children()
    assert len(workers) == 2
    reader.close()
    assert multiprocessing.active_children() == []
    assert all(worker.exitcode is not None for worker in workers)


@pytest.mark.parametrize("batch_size", [1, 7, 500, 501, 1000, 1999, 2000, 10_000])
def test_a_slice_never_straddles_two_batches(batch_size: int) -> None:
    size = prefetch.slice_size(batch_size)
    assert batch_size % size == 0
    assert size <= prefetch.SLICE_RECORDS or size == batch_size
    if batch_size in (1000, 2000, 10_000):
        assert size == prefetch.SLICE_RECORDS
