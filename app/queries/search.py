"""Our search language, parsed once into safe query objects.

The language is the one people type into search boxes: words are ANDed, `"a phrase"`,
`-excluded`, and `OR` between two items. `parse` turns any text into a `SearchQuery` whose
words hold only letters and digits, so nothing a user types reaches a query parser raw:
app/search/matching.py builds the index's queries from these objects. Knows nothing of
HTTP or of the index.
"""

import html
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

MAX_QUERY_CHARS = 1000
# Letters and digits only: what the index's tokenizer keeps (app/search/index.py).
_WORD = re.compile(r"[^\W_]+")
# Private markers around matched terms; HTML-escaping leaves them alone, then they become
# <mark> and </mark>. Chosen because no article text contains them.
MARK_START, MARK_END = "\x02", "\x03"


class SearchMode(StrEnum):
    """How `q` finds articles: by its words, by its meaning, or by both rankings fused."""

    KEYWORD = "keyword"
    SEMANTIC = "semantic"
    HYBRID = "hybrid"


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear next to each other, in order (one word is a phrase of one).
    With `prefix` (typed as a `*` right after the last word), the last word also matches
    every word it begins: `palm*` finds `palmyra`, for search as you type."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """AND of OR-groups of phrases, minus any excluded phrase."""

    groups: tuple[tuple[Phrase, ...], ...]
    excluded: tuple[Phrase, ...]

    @property
    def matches_nothing(self) -> bool:
        """Text with no words at all (`***`, emoji): no article can match it."""
        return not self.groups and not self.excluded

    @property
    def ranked(self) -> bool:
        """Only positive terms give a relevance order; exclusions alone do not."""
        return bool(self.groups)

    def meaning_text(self) -> str:
        """What search by meaning embeds: the positive words, in order."""
        return " ".join(w for group in self.groups for phrase in group for w in phrase.words)

    def canonical(self) -> str:
        """A normal form: equal for queries that mean the same; used in cursors and caches."""
        parts = [" OR ".join(_quote(p) for p in group) for group in self.groups]
        parts += [f"-{_quote(p)}" for p in self.excluded]
        return " ".join(parts)


def _quote(phrase: Phrase) -> str:
    quoted = '"' + " ".join(phrase.words).replace('"', '""') + '"'
    return quoted + "*" if phrase.prefix else quoted


# A `*` right after a word, at the end of an item, makes that word a prefix.
_PREFIX = re.compile(r"[^\W_]\*+\s*$")


def _tokens(text: str) -> list[tuple[str, bool, bool]]:
    """(text, quoted, negated) items; an unclosed quote runs to the end."""
    items: list[tuple[str, bool, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        if text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            items.append((text[i + 1 : end], True, negated))
            i = end + 1
            continue
        start = i
        while i < n and not text[i].isspace() and text[i] != '"':
            i += 1
        items.append((text[start:i], False, negated))
    return items


@lru_cache(maxsize=1024)
def parse(q: str | None) -> SearchQuery | None:
    """The query `q` means, or None for no search (missing, empty or only spaces). Kept per
    text: a request reads its filter's search several times, and the result is immutable."""
    if q is None or not q.strip():
        return None
    groups: list[list[Phrase]] = []
    excluded: list[Phrase] = []
    pending_or = False
    last_was_positive = False
    for text, quoted, negated in _tokens(q):
        if text == "OR" and not quoted and not negated:
            pending_or = last_was_positive
            continue
        words = tuple(w.lower() for w in _WORD.findall(text))
        if not words:
            continue
        phrase = Phrase(words, prefix=_PREFIX.search(text) is not None)
        if negated:
            excluded.append(phrase)
            last_was_positive = pending_or = False
        elif pending_or and groups:
            groups[-1].append(phrase)
            pending_or = False
            last_was_positive = True
        else:
            groups.append([phrase])
            last_was_positive = True
    # Repeats mean nothing more: drop them, so 300 copies of a word cost what one does.
    unique_groups = dict.fromkeys(tuple(dict.fromkeys(g)) for g in groups)
    return SearchQuery(tuple(unique_groups), tuple(dict.fromkeys(excluded)))


def highlight(raw: str) -> str:
    """HTML-escape a snippet, then turn our private markers into <mark> tags."""
    return html.escape(raw, quote=False).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
