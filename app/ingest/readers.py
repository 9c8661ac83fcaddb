"""Files → located JSON values, streamed: memory stays flat at any file size.

Shapes: one JSON object, a JSON array of objects, JSON Lines, any of them gzipped, and
double-encoded JSON (a JSON string whose value is JSON text) for a whole file or a line.
`.jsonl`/`.ndjson` files are read line by line, `.csv` files (what `corpus export --format
csv` writes, or any CSV with a header row) row by row; anything else is sniffed: a file opening
with `[` is a streamed array, one whose first line is a whole JSON value is read as lines,
and the rest as a document of concatenated values. Nothing here raises on bad data: it
becomes a Reject and reading goes on wherever a next record can be found.
"""

import codecs
import csv
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson

from app.files import CSV_SUFFIX, gzipped, logical_suffix
from app.ingest.fields import FieldMap
from app.ingest.records import Located, OnReject, Reject, raw_text

LINE_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_ID_COLUMNS = frozenset({"article_id", "source_id"})
CSV_EXTRA_COLUMN = "extra"  # a JSON object of the fields beyond the known ones
SOURCES_FILE = "sources.json"
MAX_RECORD_BYTES = 64 << 20  # one record larger than this is a reject, not an OOM
CHUNK_BYTES = 1 << 20
MAX_DECODE_DEPTH = 3  # how many layers of JSON-in-a-string we unwrap

_WS = " \t\r\n"
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _open(path: Path) -> IO[bytes]:
    """The file's bytes as UTF-8: gunzipped for a `.gz` name, and transcoded when it is
    UTF-16 or UTF-32 (told by its byte order mark, or by the NUL bytes of ASCII text)."""
    raw = _open_raw(path)
    encoding = _wide_encoding(cast(io.BufferedReader, raw).peek(4)[:4])
    if encoding is None:
        return raw
    text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
    return io.BufferedReader(_Utf8(text), CHUNK_BYTES)


def _open_raw(path: Path) -> IO[bytes]:
    if gzipped(path):
        return cast(IO[bytes], gzip.open(path, "rb"))
    # A 1 MB buffer: with the default 8 KB, every other 3 KB line costs a read() call.
    return path.open("rb", buffering=CHUNK_BYTES)


# Byte order marks, longest first: UTF-32's little-endian mark begins with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _wide_encoding(head: bytes) -> str | None:
    """The encoding of a file of UTF-16 or UTF-32 text, from its first four bytes."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding  # which reads and drops the mark itself
    # No mark: a record starts with an ASCII character, half of UTF-16's two bytes.
    if len(head) == 4 and head[0] and not head[1] and head[2] and not head[3]:
        return "utf-16-le"
    if len(head) == 4 and not head[0] and head[1] and not head[2] and head[3]:
        return "utf-16-be"
    return None


class _Utf8(io.RawIOBase):
    """A text stream read as UTF-8 bytes: what the readers below take."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = self._text.read(CHUNK_BYTES // 4)
            if not chunk:
                return 0
            self._pending = chunk.encode("utf-8", errors="surrogateescape")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._text.close()
        super().close()


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """Files under `paths`, directories walked in name order; hidden and sources files skipped."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path).parts
                hidden = any(p.startswith(".") for p in rel)
                if child.is_file() and not hidden and child.name != SOURCES_FILE:
                    yield child
        else:
            yield path


def sources_files(paths: list[Path]) -> Iterator[Path]:
    """Every `sources.json` inside the given directories."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob(SOURCES_FILE) if p.is_file())


def unwrap(value: object) -> object:
    """Decode double-encoded JSON: a string whose value is JSON text, up to a few layers."""
    for _ in range(MAX_DECODE_DEPTH):
        if not isinstance(value, str):
            break
        text = value.lstrip(_WS)
        if not text.startswith(("{", "[", '"')):
            break
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            break
    return value


def _expand(path: str, line: int, value: object, raw: str | bytes) -> Iterator[Located]:
    """One decoded value → records: arrays (also double-encoded ones) give their elements."""
    value = unwrap(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield Located(path, line, unwrap(item), raw, index)
    else:
        yield Located(path, line, value, raw)


def read_values(path: Path, on_reject: OnReject) -> Iterator[Located]:
    """Every JSON value in the file at `path`, wherever it can be read."""
    name = str(path)
    try:
        if logical_suffix(path) == CSV_SUFFIX:
            yield from _read_csv(path, name, on_reject)
        elif logical_suffix(path) in LINE_SUFFIXES or _first_line_is_a_value(path):
            yield from _read_lines(path, name, on_reject)
        else:
            yield from _read_document(path, name, on_reject)
    except _READ_ERRORS as exc:
        # Raised on open or sniff; the readers below report their own read errors.
        on_reject(Reject(name, 1, f"cannot read file: {_read_error(exc)}"))


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "compressed file is truncated"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip data ({exc})"
    return str(exc) or type(exc).__name__


def _first_line_is_a_value(path: Path) -> bool:
    with _open(path) as f:
        first = f.readline(MAX_RECORD_BYTES)
        while first and not first.strip():
            first = f.readline(MAX_RECORD_BYTES)
    stripped = first.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if not stripped or stripped.startswith(b"["):
        return False
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False
    return True


def _read_lines(path: Path, name: str, on_reject: OnReject) -> Iterator[Located]:
    lineno = 0
    with _open(path) as f:
        try:
            while True:
                raw = f.readline(MAX_RECORD_BYTES + 1)
                if not raw:
                    return
                lineno += 1
                if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                    while (more := f.readline(CHUNK_BYTES)) and not more.endswith(b"\n"):
                        pass
                    on_reject(
                        Reject(
                            name,
                            lineno,
                            f"record exceeds {MAX_RECORD_BYTES} bytes",
                            raw_text(raw, 4096),
                        )
                    )
                    continue
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                try:
                    value = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    on_reject(Reject(name, lineno, _json_reason(raw, exc), raw_text(raw)))
                    continue
                yield from _expand(name, lineno, value, raw)
        except _READ_ERRORS as exc:
            on_reject(Reject(name, lineno + 1, f"cannot read further: {_read_error(exc)}"))


def _json_reason(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid UTF-8"
    return f"malformed JSON: {exc.msg} (column {exc.colno})"


class _TextStream:
    """A growing text window over a byte stream, tracking line numbers of what it drops."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        # surrogateescape keeps invalid bytes visible; validation rejects records holding them.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.eof = False

    def fill(self, min_bytes: int = CHUNK_BYTES) -> bool:
        """Read more; False at end of stream."""
        if self.eof:
            return False
        data = self._f.read(min_bytes)
        if not data:
            self.buf += self._decoder.decode(b"", final=True)
            self.eof = True
            return False
        if self.pos > CHUNK_BYTES:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += self._decoder.decode(data)
        return True

    def advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def skip_ws(self) -> str:
        """Skip whitespace (and a BOM); the next character, or '' at the end."""
        while True:
            n = len(self.buf)
            i = self.pos
            while i < n and (self.buf[i] in _WS or self.buf[i] == "\ufeff"):
                i += 1
            self.advance(i)
            if i < n:
                return self.buf[i]
            if not self.fill():
                return ""

    def find_record_start(self, pattern: re.Pattern[str]) -> bool:
        """Move to the next line that opens a record; False when the file has none left."""
        start = self.pos + 1
        while True:
            match = pattern.search(self.buf, start)
            if match:
                self.advance(match.end() - 1)
                return True
            start = max(self.pos + 1, len(self.buf) - 64)
            if not self.fill():
                self.advance(len(self.buf))
                return False


_DECODER = json.JSONDecoder()
_ARRAY_RESYNC = re.compile(r"\n[ \t]*\{")
_DOCUMENT_RESYNC = re.compile(r"\n[{\"\[]")


def _decode_at(s: _TextStream) -> tuple[object, int] | json.JSONDecodeError:
    """Decode the value at s.pos, reading more while it is cut off by the window."""
    want = CHUNK_BYTES
    while True:
        try:
            value, end = _DECODER.raw_decode(s.buf, s.pos)
        except json.JSONDecodeError as exc:
            if s.eof or len(s.buf) - s.pos > MAX_RECORD_BYTES or not s.fill(want):
                return exc
            want *= 2
            continue
        if end < len(s.buf) or s.eof or not s.fill(want):
            return value, end


def _read_document(path: Path, name: str, on_reject: OnReject) -> Iterator[Located]:
    with _open(path) as f:
        s = _TextStream(f)
        try:
            first = s.skip_ws()
            if first == "[":
                yield from _read_array(s, name, on_reject)
            elif first:
                yield from _read_concatenated(s, name, on_reject)
        except _READ_ERRORS as exc:
            on_reject(Reject(name, s.line, f"cannot read further: {_read_error(exc)}"))


def _reject_at(s: _TextStream, name: str, exc: json.JSONDecodeError, index: int | None) -> Reject:
    bad_line = s.line + s.buf.count("\n", s.pos, exc.pos)
    snippet = s.buf[s.pos : min(exc.pos + 200, s.pos + 4096)]
    reason = f"malformed JSON: {exc.msg} (line {bad_line})"
    return Reject(name, s.line, reason, snippet, index)


def _read_array(s: _TextStream, name: str, on_reject: OnReject) -> Iterator[Located]:
    s.advance(s.pos + 1)  # past '['
    index = 0
    expect_comma = False
    while True:
        ch = s.skip_ws()
        if ch == "]":
            s.advance(s.pos + 1)
            break
        if not ch:
            on_reject(Reject(name, s.line, "JSON array is not closed (file truncated?)"))
            return
        if expect_comma:
            if ch != ",":
                exc = json.JSONDecodeError("Expecting ',' delimiter", s.buf, s.pos)
                on_reject(_reject_at(s, name, exc, index))
                if not s.find_record_start(_ARRAY_RESYNC):
                    return
                expect_comma = False
                continue
            s.advance(s.pos + 1)
            s.skip_ws()
        result = _decode_at(s)
        if isinstance(result, json.JSONDecodeError):
            on_reject(_reject_at(s, name, result, index))
            index += 1
            if not s.find_record_start(_ARRAY_RESYNC):
                return
            expect_comma = False
            continue
        value, end = result
        line, raw = s.line, s.buf[s.pos : end]
        s.advance(end)
        yield Located(name, line, unwrap(value), raw, index)
        index += 1
        expect_comma = True
    if s.skip_ws():
        on_reject(Reject(name, s.line, "unexpected data after the JSON array"))


def _read_concatenated(s: _TextStream, name: str, on_reject: OnReject) -> Iterator[Located]:
    while s.skip_ws():
        result = _decode_at(s)
        if isinstance(result, json.JSONDecodeError):
            on_reject(_reject_at(s, name, result, None))
            if not s.find_record_start(_DOCUMENT_RESYNC):
                return
            continue
        value, end = result
        line, raw = s.line, s.buf[s.pos : end]
        s.advance(end)
        yield from _expand(name, line, value, raw)


def _csv_record(header: list[str], row: list[str]) -> dict[str, object] | str:
    """A CSV row as a record: id columns as integers, `extra` spread back to the top level."""
    if len(row) != len(header):
        return f"expected {len(header)} columns, got {len(row)}"
    record: dict[str, object] = {}
    for column, cell in zip(header, row, strict=True):
        if column == CSV_EXTRA_COLUMN:
            if not cell:
                continue
            try:
                extra = orjson.loads(cell)
            except orjson.JSONDecodeError as exc:
                return f"extra column is not JSON: {exc.msg}"
            if not isinstance(extra, dict):
                return "extra column must hold a JSON object"
            record.update(extra)
        elif column in CSV_ID_COLUMNS and cell.isascii() and cell.isdigit():
            record[column] = int(cell)
        else:
            record[column] = cell
    return record


def _csv_text(row: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(row)
    return out.getvalue()


def _read_csv(path: Path, name: str, on_reject: OnReject) -> Iterator[Located]:
    """Rows under a header row; a record's line is where its row starts (cells may span lines)."""
    csv.field_size_limit(MAX_RECORD_BYTES)
    with io.TextIOWrapper(
        _open(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    ) as text:
        reader = csv.reader(text)
        line = 1
        try:
            header = next(reader, None)
            if header is None:
                return
            header = [column.strip() for column in header]
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except csv.Error as exc:
                    on_reject(Reject(name, line, f"malformed CSV: {exc}"))
                    if reader.line_num < line:  # nothing consumed: no next record to find
                        return
                    continue
                except StopIteration:
                    return
                if not row:
                    continue
                record = _csv_record(header, row)
                if isinstance(record, str):
                    on_reject(Reject(name, line, record, _csv_text(row)))
                else:
                    yield Located(name, line, record, _csv_text(row))
        except _READ_ERRORS as exc:
            on_reject(Reject(name, line, f"cannot read further: {_read_error(exc)}"))


class MappedReads:
    """The located values of `files`, renamed by `field_map`, counting the raw bytes read.

    The first stages of every ingest, in process or in the reader processes (prefetch.py);
    `bytes_read` feeds the progress bar.
    """

    def __init__(self, files: list[Path], field_map: FieldMap | None, on_reject: OnReject) -> None:
        self.bytes_read = 0
        self._files = files
        self._field_map = field_map
        self._on_reject = on_reject

    def __iter__(self) -> Iterator[Located]:
        values: Iterable[Located] = self._measured()
        if self._field_map is not None and self._field_map.renames:
            values = self._field_map.apply(values, self._on_reject)
        return iter(values)

    def _measured(self) -> Iterator[Located]:
        for path in self._files:
            for value in read_values(path, self._on_reject):
                self.bytes_read += len(value.raw)
                yield value
