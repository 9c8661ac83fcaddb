"""How a search matches, beside what it says: in which fields, and whether its words forgive
typos. Shared by the API's parameters, the filter and the index's query builder; knows
nothing of HTTP or of the index.
"""

from enum import StrEnum


class Typos(StrEnum):
    """`0`: words match as typed (and their word forms). `auto`: words of 5-8 letters also
    match words one typo away, words of 9 letters or more two typos away."""

    OFF = "0"
    AUTO = "auto"


class SearchField(StrEnum):
    """A text field of an article that `q` can match in."""

    TITLE = "title"
    CONTENT = "content"


ALL_FIELDS: frozenset[SearchField] = frozenset(SearchField)


def field_names(fields: frozenset[SearchField]) -> tuple[str, ...]:
    """`fields` in the index's order (title first), as its field names (the same words)."""
    return tuple(f.value for f in SearchField if f in fields)
