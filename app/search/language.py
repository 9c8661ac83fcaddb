"""Our search language, parsed once into safe query objects.

The language is the one people type into search boxes: words are ANDed (`AND` between two
items says so too), `"a phrase"`, `-excluded` or `NOT excluded`, `OR` between two items,
and parentheses to group. `parse` turns any text into a `SearchQuery` whose words hold
only letters and digits, so nothing a user types reaches a query parser raw, and nothing
is an error: an operator with no item where it needs one, and a parenthesis without its
partner, are plain text. app/search/matching.py builds the index's queries from these
objects. Knows nothing of HTTP or of the index.
"""

import html
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Union

MAX_QUERY_CHARS = 1000
# Letters and digits only: what the index's tokenizer keeps (app/search/index.py).
_WORD = re.compile(r"[^\W_]+")
# Private markers around matched terms; HTML-escaping leaves them alone, then they become
# <mark> and </mark>. Chosen because no article text contains them.
MARK_START, MARK_END = "\x02", "\x03"
AND, OR, NOT = "AND", "OR", "NOT"
# Parentheses nested deeper than this are plain text: parsing and matching recurse per level.
MAX_NESTING = 8


class SearchMode(StrEnum):
    """How `q` finds articles: by its words, by its meaning, or by both rankings fused."""

    KEYWORD = "keyword"
    SEMANTIC = "semantic"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear next to each other, in order (one word is a phrase of one).
    With `prefix` (typed as a `*` right after the last word), the last word also matches
    every word it begins: `palm*` finds `palmyra`, for search as you type. `exact`: one
    word typed in quotes, which typo tolerance leaves as it is (as it does every phrase)."""

    words: tuple[str, ...]
    prefix: bool = False
    exact: bool = False


# An item of a query: a phrase, or a parenthesised query that does not flatten into its
# parent (`(a b) OR c`, `-(a b)`).
Clause = Union[Phrase, "SearchQuery"]


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """AND of OR-groups of clauses, minus any excluded clause."""

    groups: tuple[tuple[Clause, ...], ...]
    excluded: tuple[Clause, ...]

    @property
    def matches_nothing(self) -> bool:
        """Text with no words at all (`***`, emoji): no article can match it."""
        return not self.groups and not self.excluded

    @property
    def ranked(self) -> bool:
        """Only positive terms give a relevance order; exclusions alone do not."""
        return bool(self.groups)

    def meaning_text(self) -> str:
        """What search by meaning embeds: the positive words, in order (those inside
        parentheses too)."""
        return " ".join(w for phrase in self.phrases() for w in phrase.words)

    def canonical(self) -> str:
        """A normal form: equal for queries that mean the same; used in cursors and caches."""
        parts = [" OR ".join(_quote(c) for c in group) for group in self.groups]
        parts += [f"-{_quote(c)}" for c in self.excluded]
        return " ".join(parts)

    def phrases(self) -> list[Phrase]:
        """Every phrase of the positive side, nested ones included: what snippets mark."""
        found: list[Phrase] = []
        for group in self.groups:
            for clause in group:
                found += clause.phrases() if isinstance(clause, SearchQuery) else [clause]
        return found


def _quote(clause: Clause) -> str:
    if isinstance(clause, SearchQuery):
        return f"({clause.canonical()})"
    quoted = '"' + " ".join(clause.words).replace('"', '""') + '"'
    if clause.exact:
        quoted = "=" + quoted  # apart from the same word unquoted, which typos may correct
    return quoted + "*" if clause.prefix else quoted


# A `*` right after a word, at the end of an item, makes that word a prefix.
_PREFIX = re.compile(r"[^\W_]\*+\s*$")


@dataclass(frozen=True, slots=True)
class _Item:
    """A word or quoted phrase as typed, or (with `group`) a parenthesised part."""

    text: str
    quoted: bool = False
    negated: bool = False
    group: "tuple[_Item, ...] | None" = None

    @property
    def operator(self) -> str | None:
        """AND, OR or NOT when typed bare, in capitals; None for anything else."""
        plain = not (self.quoted or self.negated or self.group is not None)
        return self.text if plain and self.text in (AND, OR, NOT) else None


def _pairs(text: str) -> set[int]:
    """Positions of the parentheses that have a partner (outside quotes), at most
    MAX_NESTING deep."""
    paired: set[int] = set()
    opened: list[int | None] = []  # None: too deep to count
    depth = 0
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            opened.append(i if depth < MAX_NESTING else None)
            depth += depth < MAX_NESTING
        elif ch == ")" and opened:
            start = opened.pop()
            if start is not None:
                paired.update((start, i))
                depth -= 1
    return paired


def _items(text: str) -> tuple[_Item, ...]:
    """The items of `text`, parenthesised parts nested; an unclosed quote runs to the end."""
    paired = _pairs(text)
    stack: list[tuple[list[_Item], bool]] = []  # enclosing levels, and whether negated
    items: list[_Item] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        if i in paired and text[i] == "(":
            stack.append((items, negated))
            items = []
            i += 1
            continue
        if i in paired:  # a closing parenthesis: back to the enclosing level
            inner, (items, group_negated) = tuple(items), stack.pop()
            items.append(_Item("", negated=group_negated, group=inner))
            i += 1
            continue
        if text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            items.append(_Item(text[i + 1 : end], quoted=True, negated=negated))
            i = end + 1
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] != '"' and i not in paired:
            i += 1
        items.append(_Item(text[start:i], negated=negated))
    return tuple(items)


def _operand(item: _Item | None) -> bool:
    """Whether `item` can stand beside an operator: anything but another AND or OR."""
    return item is not None and item.operator not in (AND, OR)


class _Level:
    """The query of one level (the whole text, or the inside of a pair of parentheses)."""

    def __init__(self) -> None:
        self.groups: list[list[Clause]] = []
        self.excluded: list[Clause] = []

    def add(self, clause: Clause | None, *, negated: bool, joined: bool) -> bool:
        """Add `clause` (`joined`: ORed with the group before); whether it was positive."""
        if clause is None:
            return False
        flat = _flat(clause)
        if negated:
            # -(a OR b) is -a -b; anything else is excluded as a whole.
            self.excluded += flat if flat is not None else [clause]
            return False
        if isinstance(clause, SearchQuery) and not clause.groups:
            self.excluded += clause.excluded  # (-a) beside other items is -a
            return False
        members = flat if flat is not None else [clause]
        if joined and self.groups:
            self.groups[-1] += members
        else:
            self.groups.append(list(members))
        return True

    def query(self) -> "SearchQuery":
        groups: list[list[Clause]] = []
        excluded = list(self.excluded)
        for group in self.groups:
            inner = group[0]
            if len(group) == 1 and isinstance(inner, SearchQuery):
                groups += [list(g) for g in inner.groups]  # `a (b -c)` is `a b -c`
                excluded += inner.excluded
            else:
                groups.append(group)
        # Repeats mean nothing more: drop them, so 300 copies of a word cost what one does.
        unique_groups = dict.fromkeys(tuple(dict.fromkeys(g)) for g in groups)
        return SearchQuery(tuple(unique_groups), tuple(dict.fromkeys(excluded)))


def _flat(clause: Clause) -> list[Clause] | None:
    """A parenthesised OR of clauses as its members, which an OR-group can take as they are."""
    if isinstance(clause, SearchQuery) and len(clause.groups) == 1 and not clause.excluded:
        return list(clause.groups[0])
    return None if isinstance(clause, SearchQuery) else [clause]


def _clause(item: _Item) -> Clause | None:
    """The clause `item` stands for; None when it holds no words."""
    if item.group is not None:
        query = _level(item.group)
        return None if query.matches_nothing else query
    words = tuple(w.lower() for w in _WORD.findall(item.text))
    if not words:
        return None
    prefix = _PREFIX.search(item.text) is not None
    return Phrase(words, prefix=prefix, exact=item.quoted and len(words) == 1 and not prefix)


def _level(items: tuple[_Item, ...]) -> SearchQuery:
    level = _Level()
    pending_or = last_was_positive = False
    negate_next = False
    for i, item in enumerate(items):
        before = items[i - 1] if i > 0 else None
        after = items[i + 1] if i + 1 < len(items) else None
        op = item.operator
        if op == NOT and _operand(after) and not negate_next:
            negate_next = True
            continue
        if op in (AND, OR) and _operand(before) and _operand(after) and not negate_next:
            # NOT's own item, not NOT, must follow: `a OR NOT b` is `a -b`.
            pending_or = op == OR and last_was_positive
            continue
        negated = item.negated or negate_next
        negate_next = False
        joined = pending_or and not negated
        pending_or = False
        if level.add(_clause(item), negated=negated, joined=joined):
            last_was_positive = True
        elif negated:
            last_was_positive = False
    return level.query()


@lru_cache(maxsize=1024)
def parse(q: str | None) -> SearchQuery | None:
    """The query `q` means, or None for no search (missing, empty or only spaces). Kept per
    text: a request reads its filter's search several times, and the result is immutable."""
    if q is None or not q.strip():
        return None
    return _level(_items(q))


def highlight(raw: str) -> str:
    """HTML-escape a snippet, then turn our private markers into <mark> tags."""
    return html.escape(raw, quote=False).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
