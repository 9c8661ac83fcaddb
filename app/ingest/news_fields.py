"""The news fields every feed carries under its own names: when (`published_at`), where
(`url`) and by whom (`author`). Each is read from our name or from the names real feeds
use, first present wins; the name used leaves `extra`, the others stay in it.

Used by validation (app/ingest/validate.py) and by migration 0009, which reads the same
names out of the `extra` of rows loaded before these fields existed.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson

from app.dates import parse_published
from app.models import AUTHOR_MAX_CHARS, URL_MAX_BYTES

# In the order they are tried. NewsAPI, the Guardian, the NYT, RSS, schema.org, then plain.
PUBLISHED_NAMES = (
    "published_at",
    "publishedAt",
    "webPublicationDate",
    "pub_date",
    "pubDate",
    "datePublished",
    "published",
    "date",
)
URL_NAMES = ("url", "webUrl", "web_url", "link")
AUTHOR_NAMES = ("author", "byline", "authors")
ALL_NAMES = frozenset((*PUBLISHED_NAMES, *URL_NAMES, *AUTHOR_NAMES))
# Our own names: always consumed, a null in them meaning "none" (an export writes them).
OWN_NAMES = ("published_at", "url", "author")
_SHOWN_CHARS = 80


@dataclass(frozen=True, slots=True)
class NewsFields:
    published_at: datetime | None = None
    url: str | None = None
    author: str | None = None
    used: tuple[str, ...] = ()  # the record's names these came from: not kept in extra


NONE = NewsFields()


def _first(record: Mapping[str, object], names: tuple[str, ...]) -> tuple[str, object] | None:
    """The first of `names` the record holds with a value (null or a blank string, as an
    empty CSV cell is, counts as absent)."""
    for name in names:
        value = record.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return name, value
    return None


def _shown(value: object) -> str:
    """The value as JSON, cut short."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text[:_SHOWN_CHARS] + ("…" if len(text) > _SHOWN_CHARS else "")


def _clean_text(name: str, text: str) -> str | None:
    """The reason `text` cannot be stored, if any."""
    if "\x00" in text:
        return f"{name} contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"{name} is not valid UTF-8 (invalid bytes or a lone surrogate)"
    return None


def _person(value: object) -> str | None:
    """A byline from a string, or from an object's `original` (the NYT) or `name`
    (schema.org); None when it holds neither."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("original", "name"):
            found = value.get(key)
            if isinstance(found, str):
                return found
    return None


def _author(name: str, value: object) -> str | tuple[str] | None:
    """The byline, None for a blank one, or (reason,)."""
    if isinstance(value, list):
        people = [_person(item) for item in value]
        if any(p is None for p in people):
            return (f"{name} must be a list of names, got {_shown(value)}",)
        text = ", ".join(p.strip() for p in people if p and p.strip())
    else:
        person = _person(value)
        if person is None:
            return (f"{name} must be a string, a list of names or an object with a name",)
        text = person
    if not text.strip():
        return None
    if len(text) > AUTHOR_MAX_CHARS:
        return (f"{name} is longer than {AUTHOR_MAX_CHARS} characters",)
    problem = _clean_text(name, text)
    return (problem,) if problem else text


def read(record: Mapping[str, object]) -> NewsFields | str:
    """The record's news fields, or the reason one of them cannot load."""
    used = [name for name in OWN_NAMES if name in record]
    published_at: datetime | None = None
    url: str | None = None
    author: str | None = None
    if found := _first(record, PUBLISHED_NAMES):
        name, value = found
        parsed = parse_published(value)
        if isinstance(parsed, str):
            return f"{name} is {parsed}: {_shown(value)}"
        published_at = parsed
        used.append(name)
    if found := _first(record, URL_NAMES):
        name, value = found
        if not isinstance(value, str):
            return f"{name} must be a string, got {_shown(value)}"
        if len(value.encode("utf-8", errors="replace")) > URL_MAX_BYTES:
            return f"{name} is longer than {URL_MAX_BYTES} bytes"
        if problem := _clean_text(name, value):
            return problem
        url = value
        used.append(name)
    if found := _first(record, AUTHOR_NAMES):
        name, value = found
        byline = _author(name, value)
        if isinstance(byline, tuple):
            return byline[0]
        author = byline
        used.append(name)
    if not used:
        return NONE
    return NewsFields(published_at, url, author, tuple(dict.fromkeys(used)))
