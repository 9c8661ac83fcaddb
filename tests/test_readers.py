"""File formats → located values, and every kind of bad record. No database needed."""

import gzip
import json
from pathlib import Path

import orjson
import pytest

from app.ingest.fields import FieldMap
from app.ingest.readers import iter_files, read_values
from app.ingest.records import Located, Reject
from app.ingest.validate import check, word_count

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_8f258d90936aba6f.txt"


def rec(i: int) -> dict[str, object]:
    return {"title": f"T{i}", "content": f"C{i}", "source_id": 2, "article_id": i}


def read(path: Path) -> tuple[list[Located], list[Reject]]:
    rejects: list[Reject] = []
    return list(read_values(path, rejects.append)), rejects


def ids(values: list[Located]) -> list[object]:
    return [v.value["article_id"] if isinstance(v.value, dict) else v.value for v in values]


def test_seed_file_is_double_encoded_and_reads_as_one_article() -> None:
    values, rejects = read(SEED)
    assert rejects == []
    assert len(values) == 1
    assert values[0].line == 1
    article = check(values[0])
    assert not isinstance(article, str)
    assert article.article_id == 166812
    assert article.source_id == 2
    assert article.title == "Islamic State Driven Out Of Syria's Ancient Palmyra City"
    assert article.content == json.loads(json.loads(SEED.read_text()))["content"]


def test_single_pretty_printed_object(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(rec(7), indent=2))
    values, rejects = read(path)
    assert (ids(values), rejects) == ([7], [])


def test_array_elements_carry_their_line_and_index(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    path.write_text(json.dumps([rec(1), rec(2), rec(3)], indent=2))
    values, rejects = read(path)
    assert rejects == []
    assert ids(values) == [1, 2, 3]
    assert [v.index for v in values] == [0, 1, 2]
    assert [v.line for v in values] == [2, 8, 14]


def test_large_array_streams_across_read_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    records = [rec(i) | {"content": "x" * 3000} for i in range(1, 1501)]
    path.write_text(json.dumps(records))
    values, rejects = read(path)
    assert rejects == []
    assert ids(values) == list(range(1, 1501))


@pytest.mark.parametrize("name", ["a.jsonl", "a.ndjson", "a.txt", "a.json"])
def test_json_lines_by_extension_or_sniffing(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(rec(i)) for i in (1, 2, 3)) + "\n\n")
    values, rejects = read(path)
    assert (ids(values), rejects) == ([1, 2, 3], [])
    assert [v.line for v in values] == [1, 2, 3]


def test_double_encoded_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(json.dumps(rec(i))) for i in (4, 5)))
    values, rejects = read(path)
    assert (ids(values), rejects) == ([4, 5], [])


def test_double_encoded_array_file(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text(json.dumps(json.dumps([rec(1), rec(2)])))
    values, rejects = read(path)
    assert (ids(values), rejects) == ([1, 2], [])


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.json.gz", "a.txt.gz"])
def test_gzip_of_each_shape(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    body = (
        json.dumps([rec(1), rec(2)])
        if ".json." in name
        else "\n".join(json.dumps(rec(i)) for i in (1, 2))
    )
    path.write_bytes(gzip.compress(body.encode()))
    values, rejects = read(path)
    assert (ids(values), rejects) == ([1, 2], [])


def test_malformed_line_is_rejected_and_neighbours_still_read(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rec(1)) + "\n{not json\n" + json.dumps(rec(3)) + "\n")
    values, rejects = read(path)
    assert ids(values) == [1, 3]
    assert len(rejects) == 1
    assert str(rejects[0]).startswith(f"{path}:2: malformed JSON")
    assert rejects[0].raw == "{not json\n"


def test_invalid_utf8_line_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        json.dumps(rec(1)).encode() + b'\n{"title": "\xff\xfe"}\n' + json.dumps(rec(3)).encode()
    )
    values, rejects = read(path)
    assert ids(values) == [1, 3]
    assert [str(r) for r in rejects] == [f"{path}:2: invalid UTF-8"]


def test_invalid_utf8_inside_an_array_is_rejected_by_validation(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    good = json.dumps(rec(1)).encode()
    path.write_bytes(
        b"[" + good + b',\n{"title": "\xff", "content": "", "source_id": 1, '
        b'"article_id": 2},\n' + json.dumps(rec(3)).encode() + b"]"
    )
    values, rejects = read(path)
    assert rejects == []
    assert ids(values) == [1, 2, 3]
    assert check(values[1]) == "title is not valid UTF-8 (invalid bytes or a lone surrogate)"


def test_malformed_array_element_resyncs_at_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    lines = [
        "[",
        "  " + json.dumps(rec(1)) + ",",
        '  {"title": oops},',
        "  " + json.dumps(rec(3)),
        "]",
    ]
    path.write_text("\n".join(lines))
    values, rejects = read(path)
    assert ids(values) == [1, 3]
    assert len(rejects) == 1
    assert rejects[0].line == 3
    assert rejects[0].index == 1
    assert "malformed JSON" in rejects[0].reason


def test_truncated_array_reports_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text("[\n" + json.dumps(rec(1)) + ",\n" + json.dumps(rec(2))[:20])
    values, rejects = read(path)
    assert ids(values) == [1]
    assert len(rejects) == 1
    assert rejects[0].line == 3


def test_truncated_gzip_keeps_what_came_before(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    body = "\n".join(json.dumps(rec(i) | {"content": "word " * 400}) for i in range(1, 200))
    data = gzip.compress(body.encode())
    path.write_bytes(data[: len(data) // 2])
    values, rejects = read(path)
    assert 0 < len(values) < 199
    assert ids(values) == list(range(1, len(values) + 1))
    assert len(rejects) == 1
    assert "truncated" in rejects[0].reason


def test_not_gzip_at_all(tmp_path: Path) -> None:
    path = tmp_path / "fake.jsonl.gz"
    path.write_text(json.dumps(rec(1)))
    values, rejects = read(path)
    assert values == []
    assert len(rejects) == 1
    assert "gzip" in rejects[0].reason


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("  \n")
    assert read(path) == ([], [])


def test_directory_walk_is_sorted_and_skips_sources_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.jsonl", "a.json", "sources.json", ".hidden.json", "b/1.json"):
        (tmp_path / name).write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["a.json", "b/1.json", "b/2.jsonl"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1], "expected a JSON object, got an array"),
        ({"title": "t", "content": "c", "source_id": 2}, "missing article_id"),
        (
            {"title": "t", "content": "c", "source_id": 2, "article_id": "7"},
            "article_id must be an integer, got a string",
        ),
        (
            {"title": "t", "content": "c", "source_id": 2, "article_id": 7.5},
            "article_id must be an integer, got a non-integer number (7.5)",
        ),
        (
            {"title": "t", "content": "c", "source_id": 2, "article_id": True},
            "article_id must be an integer, got a boolean",
        ),
        (
            {"title": "t", "content": "c", "source_id": 2, "article_id": 0},
            "article_id must be between 1 and 9223372036854775807, got 0",
        ),
        (
            {"title": "t", "content": "c", "source_id": 2, "article_id": 2**63},
            f"article_id must be between 1 and 9223372036854775807, got {2**63}",
        ),
        (
            {"title": "t", "content": "c", "source_id": -1, "article_id": 1},
            "source_id must be between 1 and 9223372036854775807, got -1",
        ),
        (
            {"title": " ", "content": "c", "source_id": 2, "article_id": 1},
            "title must not be empty",
        ),
        (
            {"title": None, "content": "c", "source_id": 2, "article_id": 1},
            "title must be a string, got null",
        ),
        ({"title": "t", "source_id": 2, "article_id": 1}, "missing content"),
        (
            {"title": "t", "content": 5, "source_id": 2, "article_id": 1},
            "content must be a string, got int",
        ),
        (
            {"title": "t", "content": "a\x00b", "source_id": 2, "article_id": 1},
            "content contains a NUL character",
        ),
        (
            {"title": "t\ud800", "content": "", "source_id": 2, "article_id": 1},
            "title is not valid UTF-8 (invalid bytes or a lone surrogate)",
        ),
    ],
)
def test_each_bad_record_has_its_reason(value: object, reason: str) -> None:
    assert check(Located("f", 1, value, "")) == reason


def test_extra_fields_are_kept_and_empty_content_is_allowed() -> None:
    result = check(Located("f", 1, rec(1) | {"content": "", "lang": "en", "tags": [1]}, ""))
    assert not isinstance(result, str)
    assert result.extra is not None
    assert orjson.loads(result.extra) == {"lang": "en", "tags": [1]}
    assert result.content == ""


def test_csv_rows_start_where_their_record_starts(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        'article_id,source_id,title,content,extra,url\n1,2,T,"two\nlines",,u\n3,2,T,C,[1],\n'
    )
    values, rejects = read(path)
    assert [(v.line, v.value) for v in values] == [
        (2, {"article_id": 1, "source_id": 2, "title": "T", "content": "two\nlines", "url": "u"})
    ]
    assert [(r.line, r.reason) for r in rejects] == [(4, "extra column must hold a JSON object")]


@pytest.mark.parametrize(
    "text", ["", " ", "a", " a b ", "a  b", "a\tb\n", "é b", "a b c", "x\u00a0y", "  \n "]
)
def test_word_count_is_whitespace_split(text: str) -> None:
    assert word_count(text) == len(text.split())


def test_field_map_renames_and_leaves_the_rest() -> None:
    rejects: list[Reject] = []
    fields = FieldMap.parse(["id=article_id", "publication=source_id"])
    values = [Located("f", 1, {"id": 1, "publication": "BBC", "x": 2}, "")]
    assert [v.value for v in fields.apply(values, rejects.append)] == [
        {"article_id": 1, "source_id": "BBC", "x": 2}
    ]
    with pytest.raises(ValueError, match="mapped to 'b'"):
        FieldMap.parse(["a=b", "c=b"])
