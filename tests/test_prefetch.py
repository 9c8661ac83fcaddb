"""The child-process reader on its own: same records and rejects as in-process, in order,
and a reader closed mid-stream leaves no process and no thread behind."""

import os
import time
from pathlib import Path

import pytest

from app import synth
from app.ingest.prefetch import READ_AHEAD, ChildReader
from app.ingest.readers import MappedReads
from app.ingest.records import ArticleIn, Reject
from app.ingest.validate import validate


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "a.jsonl"
    synth.write(path, 300, body_chars=(50, 200))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[10] = b"{not json\n"
    lines[150] = b'{"article_id": 0, "source_id": 1, "title": "t", "content": "c"}\n'
    path.write_bytes(b"".join(lines))
    return path


def test_child_reader_gives_what_the_in_process_reader_gives(tmp_path: Path) -> None:
    path = _file(tmp_path)
    expected_rejects: list[Reject] = []
    in_process = MappedReads([path], None, expected_rejects.append)
    expected = list(validate(in_process, expected_rejects.append))
    rejects: list[Reject] = []
    events: list[str] = []

    def on_reject(reject: Reject) -> None:
        rejects.append(reject)
        events.append(f"reject {reject.line}")

    with ChildReader([path], None, batch_size=7) as reader:
        got: list[ArticleIn] = []
        for record in reader.records(on_reject):
            got.append(record)
            events.append(f"record {len(got)}")
    assert len(got) == 298
    assert got == expected
    assert rejects == expected_rejects
    assert [r.line for r in rejects] == [11, 151]
    # Each frame's rejects come before its records: line 11 is in the second frame of 7.
    assert events.index("reject 11") < events.index("record 8")
    assert reader.bytes_read == in_process.bytes_read > 0


def test_closing_mid_stream_ends_the_child_and_the_read_ahead_thread(tmp_path: Path) -> None:
    path = _file(tmp_path)
    reader = ChildReader([path], None, batch_size=5)
    records = reader.records(lambda _: None)
    next(records)
    pid = reader.pid
    assert pid is not None
    for _ in range(500):  # let the child fill the read-ahead queue and block on the pipe
        if reader._frames.qsize() == READ_AHEAD:
            break
        time.sleep(0.01)
    assert reader._frames.qsize() == READ_AHEAD
    reader.close()
    assert reader.pid is None
    assert not reader._pump.is_alive()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # reaped by close(): no longer our child
