"""Publication dates: the formats ingest reads, the bounds the API takes, one time scale.

Every date is UTC. Ingest reads what real feeds write (ISO 8601 / RFC 3339, a date alone,
RFC 2822 as RSS writes it, Unix time in seconds or milliseconds); a value without an
offset is taken as UTC. The API's `published_from`/`published_to` take a date-time, a date,
a month (`2016-03`) or a year (`2016`), so a facet bucket's value is also a valid bound.
The search index and cursors hold a date as microseconds since the epoch (`to_micros`).
Knows nothing of HTTP or of the database.
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Literal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Unix times at or past this are milliseconds: 10^11 seconds is the year 5138, while 10^11
# milliseconds is 1973.
MILLIS_FROM = 10**11
# Years alone and year-months, which ISO 8601 allows and datetime.fromisoformat does not.
_YEAR = re.compile(r"\d{4}")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DIGITS = re.compile(r"-?\d{9,}")  # Unix seconds as a string (CSV): longer than a date


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: the index's and the cursors' scale."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC; a value without an offset is UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _from_unix(value: float) -> datetime:
    seconds = value / 1000 if abs(value) >= MILLIS_FROM else value
    whole = int(seconds)
    micros = round((seconds - whole) * 1_000_000)
    return EPOCH + timedelta(seconds=whole, microseconds=micros)


def parse_published(value: object) -> datetime | str:
    """A record's publication date in UTC, or the reason it is not one.

    Accepts ISO 8601 / RFC 3339 with or without an offset (`2016-03-27T09:14:00Z`,
    `2016-03-27 09:14:00`), a date alone (midnight UTC), RFC 2822 (`Sun, 27 Mar 2016
    09:14:00 GMT`) and Unix time in seconds or milliseconds (a number, or a string of
    digits as a CSV cell holds it).
    """
    if isinstance(value, bool):
        return "not a date string or a Unix time"
    try:
        if isinstance(value, int | float):
            if value != value or value in (float("inf"), float("-inf")):
                return "not a finite number"
            return _from_unix(value)
        if not isinstance(value, str):
            return "not a date string or a Unix time"
        text = value.strip()
        if _DIGITS.fullmatch(text):
            return _from_unix(int(text))
        return _utc(_from_text(text))
    except (ValueError, OverflowError, TypeError):
        return "not a date (ISO 8601, RFC 2822 or Unix time)"


def _from_text(text: str) -> datetime:
    try:
        # Takes `Z`, offsets, a space for `T`, and a date alone.
        return datetime.fromisoformat(text)
    except ValueError:
        if text[:1].isdigit() and text[4:5] == "-":
            raise
    return parsedate_to_datetime(text)  # RFC 2822; raises ValueError (or TypeError)


Segment = Literal["dated", "undated"]


def segments(*, backward: bool, from_undated: bool | None) -> list[Segment]:
    """The parts of a walk in date order, in the order it reads them: the dated articles,
    then the undated (undated last in either direction), reversed for a walk back. A walk
    that resumes from a key (`from_undated` says whether the key's article was undated)
    starts in that key's part."""
    parts: list[Segment] = ["undated", "dated"] if backward else ["dated", "undated"]
    if from_undated is None:
        return parts
    return parts[parts.index("undated" if from_undated else "dated") :]


class Unit(StrEnum):
    """A calendar bucket of a date facet (UTC)."""

    YEAR = "year"
    MONTH = "month"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class Bound:
    """A parsed `published_from`/`published_to`: the instant it starts, and the instant just
    past it (a date-time is one instant; a date, month or year spans that whole period);
    `end` is None past the last instant a datetime holds."""

    start: datetime
    end: datetime | None


def parse_bound(text: str) -> Bound:
    """A date-time, a date, a month (`2016-03`) or a year (`2016`); ValueError otherwise.
    A date-time without an offset is UTC."""
    try:
        return _bound(text.strip())
    except OverflowError as exc:  # an offset that moves it past year 1 or 9999
        raise ValueError(str(exc)) from None


def _bound(text: str) -> Bound:
    if _YEAR.fullmatch(text):
        year = int(text)
        start = datetime(year, 1, 1, tzinfo=UTC)
        return Bound(start, _next(start, Unit.YEAR))
    if match := _YEAR_MONTH.fullmatch(text):
        start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
        return Bound(start, _next(start, Unit.MONTH))
    if len(text) == 10:  # YYYY-MM-DD
        day = date.fromisoformat(text)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return Bound(start, _next(start, Unit.DAY))
    moment = _utc(datetime.fromisoformat(text))
    return Bound(moment, _later(moment, timedelta(microseconds=1)))


def _next(start: datetime, unit: Unit) -> datetime | None:
    """The start of the period after the one `start` begins (None past the year 9999)."""
    if unit is Unit.DAY:
        return _later(start, timedelta(days=1))
    if start.year == 9999 and (unit is Unit.YEAR or start.month == 12):
        return None
    if unit is Unit.MONTH:
        month = start.month % 12 + 1
        return start.replace(year=start.year + (month == 1), month=month)
    return start.replace(year=start.year + 1)


def _later(moment: datetime, step: timedelta) -> datetime | None:
    try:
        return moment + step
    except OverflowError:
        return None


def bucket_number(moment: datetime, unit: Unit) -> int:
    """Which bucket of `unit` holds `moment`, counted from the epoch: the index keeps one
    such number per unit, so a facet is one aggregation over existing values."""
    if unit is Unit.DAY:
        return (moment - EPOCH).days
    if unit is Unit.MONTH:
        return (moment.year - 1970) * 12 + moment.month - 1
    return moment.year - 1970


def bucket_label(number: int, unit: Unit) -> str:
    """The facet value of bucket `number`: `2016`, `2016-03` or `2016-03-27`, each also a
    valid `published_from`/`published_to`."""
    if unit is Unit.DAY:
        return (EPOCH + timedelta(days=number)).date().isoformat()
    if unit is Unit.MONTH:
        year, month = divmod(number, 12)
        return f"{1970 + year:04d}-{month + 1:02d}"
    return f"{1970 + number:04d}"
