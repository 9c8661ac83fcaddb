"""JSON values → ArticleIn, or a Reject with its reason. Each rule has its one place here."""

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime

import orjson

from app.ingest import news_fields
from app.ingest.records import ArticleIn, Located, OnReject, Reject, raw_text
from app.models import MAX_ID, TITLE_MAX_CHARS
from app.settings import DEFAULT_MAX_CONTENT_BYTES
from app.text import excerpt

KNOWN_FIELDS = frozenset({"article_id", "source_id", "title", "content"})


def record_hash(
    source_id: int,
    title: str,
    content: str,
    extra: object,
    published_at: datetime | None = None,
    url: str | None = None,
    author: str | None = None,
) -> str:
    """Digest of every stored field: equal hashes mean a re-ingest changes nothing.

    The news fields join the digest only when one is set, so a record without them keeps
    the digest it had before they existed (migration 0009) and re-ingests as unchanged.
    """
    fields: list[object] = [source_id, title, content, extra]
    if published_at is not None or url is not None or author is not None:
        fields += [published_at, url, author]
    payload = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


# ASCII whitespace as str.split() sees it. One space-separated run is counted by counting
# spaces; anything else (tabs, newlines, double spaces, non-ASCII text) takes str.split().
_OTHER_ASCII_WS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"


def word_count(text: str) -> int:
    """len(text.split()), without building the list for plain single-spaced ASCII text.

    Splitting a 3 KB body allocates ~500 strings: a third of validation's time.
    """
    if (
        text.isascii()
        and "  " not in text
        and not any(ws in text for ws in _OTHER_ASCII_WS)
        and text
    ):
        return text.count(" ") + 1 - (text[0] == " ") - (text[-1] == " ")
    return len(text.split())


def _positive_id(record: dict[str, object], name: str) -> int | str:
    value = record.get(name)
    if name not in record:
        return f"missing {name}"
    if isinstance(value, float) and value.is_integer() and not 1 <= value <= MAX_ID:
        # The JSON parser reads an integer past 64 bits as a float: say what is wrong.
        return f"{name} is out of range: it must be between 1 and {MAX_ID}"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an integer, got {_json_type(value)}"
    if not 1 <= value <= MAX_ID:
        return f"{name} must be between 1 and {MAX_ID}, got {value}"
    return value


def _text(record: dict[str, object], name: str, *, non_blank: bool) -> str | None:
    if name not in record:
        return f"missing {name}"
    value = record[name]
    if not isinstance(value, str):
        return f"{name} must be a string, got {_json_type(value)}"
    if non_blank and not value.strip():
        return f"{name} must not be empty"
    if "\x00" in value:
        return f"{name} contains a NUL character"
    if not (value.isascii() or _encodes(value)):
        return f"{name} is not valid UTF-8 (invalid bytes or a lone surrogate)"
    return None


def _encodes(text: str) -> bool:
    """Whether `text` is valid UTF-8: no lone surrogates (invalid input bytes become those)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"a non-integer number ({value!r})"
    return names.get(type(value), type(value).__name__)


def check(item: Located, max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES) -> ArticleIn | str:
    """The validated record, or the reason it cannot load.

    The common case (a well-formed record) runs inline, in one pass of cheap type checks;
    any record that fails one goes through `_reason`, which names the first rule it breaks.
    A body of up to `max_content_bytes // 4` characters fits in `max_content_bytes` UTF-8
    bytes whatever it holds, so only a longer one has its bytes counted.
    """
    record = item.value
    if type(record) is not dict:
        return _reason(record, max_content_bytes)
    article_id = record.get("article_id")
    source_id = record.get("source_id")
    title = record.get("title")
    content = record.get("content")
    if not (
        type(article_id) is int
        and 1 <= article_id <= MAX_ID
        and type(source_id) is int
        and 1 <= source_id <= MAX_ID
        and type(title) is str
        and title
        and len(title) <= TITLE_MAX_CHARS
        and not title.isspace()
        and "\x00" not in title
        and (title.isascii() or _encodes(title))
        and type(content) is str
        and len(content) <= max_content_bytes // 4
        and "\x00" not in content
        and (content.isascii() or _encodes(content))
    ):
        return _reason(record, max_content_bytes)
    return _article(record, article_id, source_id, title, content)


def _reason(record: object, max_content_bytes: int) -> ArticleIn | str:
    """The slow path: the first rule `record` breaks, each checked in order (or the record,
    when only the fast path's exact type tests failed, e.g. for a subclass of int)."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {_json_type(record)}"
    article_id = _positive_id(record, "article_id")
    if isinstance(article_id, str):
        return article_id
    source_id = _positive_id(record, "source_id")
    if isinstance(source_id, str):
        return source_id
    for name, non_blank in (("title", True), ("content", False)):
        problem = _text(record, name, non_blank=non_blank)
        if problem is not None:
            return problem
    title, content = str(record["title"]), str(record["content"])
    if len(title) > TITLE_MAX_CHARS:
        return f"title is longer than {TITLE_MAX_CHARS} characters"
    if len(content) > max_content_bytes // 4:
        size = len(content) if content.isascii() else len(content.encode("utf-8"))
        if size > max_content_bytes:
            return (
                f"content is {size:,} bytes, over the limit of {max_content_bytes:,} "
                "(--max-content-bytes)"
            )
    return _article(record, article_id, source_id, title, content)


def _article(
    record: dict[str, object], article_id: int, source_id: int, title: str, content: str
) -> ArticleIn | str:
    """A record whose known fields passed: its news fields, its extra fields as JSON text,
    and its digest."""
    news = news_fields.NONE
    extra: dict[str, object] | None = None
    if len(record) > len(KNOWN_FIELDS):  # every known field is present by now
        found = news_fields.read(record)
        if isinstance(found, str):
            return found
        news = found
        used = news.used
        extra = {k: v for k, v in record.items() if k not in KNOWN_FIELDS and k not in used}
        extra = extra or None
    try:
        extra_text = None if extra is None else orjson.dumps(extra).decode()
        digest = record_hash(
            source_id, title, content, extra, news.published_at, news.url, news.author
        )
    except (orjson.JSONEncodeError, TypeError):
        return "extra fields are not valid UTF-8 JSON"
    return ArticleIn(
        article_id,
        source_id,
        title,
        content,
        extra_text,
        digest,
        word_count(content),
        excerpt(content),
        news.published_at,
        news.url,
        news.author,
    )


def rejected(item: Located, reason: str) -> Reject:
    return Reject(item.path, item.line, reason, raw_text(item.raw), item.index)


def validate(
    values: Iterable[Located],
    on_reject: OnReject,
    max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
) -> Iterator[ArticleIn]:
    for item in values:
        result = check(item, max_content_bytes)
        if isinstance(result, str):
            on_reject(rejected(item, result))
        else:
            yield result
