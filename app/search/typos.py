"""Typo tolerance: which typed words forgive typos, how far, and what they then match.

With `typos=auto`, a word of 5 to 8 letters also matches the index's words one edit away (a
letter inserted, deleted or substituted, or two neighbours transposed: the optimal string
alignment distance, which is what tantivy's Levenshtein automaton counts), and a word of 9
letters or more two edits away, as Meilisearch, Typesense and Algolia do. Shorter words,
words with digits, quoted words, phrases, prefixes and exclusions stay exact.

Edits are counted between words as written (the index's WORD_FIELDS), never between stems:
`goverment` is one edit from `government`, while its stem `gover` would be one from `over`.
The index finds the words within reach itself, walking its term dictionary with one
Levenshtein automaton per word and field, which visits only the dictionary's prefixes that
can still end within reach: a word's expansion is bounded by its edits (two at most, and
only for words of five letters or more) rather than by a list of words built here, and
costs the union of the postings of the words it finds, at most every article once, as a
common word does. At most MAX_TOLERANT_WORDS words of one search expand; corrections
marked on a page or weighed for a suggestion are capped at MAX_CORRECTIONS per word.
Knows nothing of HTTP or of the database.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import tantivy
from rapidfuzz import process
from rapidfuzz.distance import OSA
from tantivy import Occur, Query

from app.search.index import SCHEMA, WORD_FIELDS, SearchIndex

ONE_EDIT_CHARS = 5  # words this long or longer forgive one edit
TWO_EDITS_CHARS = 9  # ... and this long or longer, two
# Words of one search that forgive typos, at most: each costs an automaton walk of each
# field's term dictionary; the words after these match exactly.
MAX_TOLERANT_WORDS = 10
# Corrections of one typed word marked on a page or weighed for a suggestion, at most
# (the nearest first).
MAX_CORRECTIONS = 50


@dataclass(frozen=True, slots=True)
class Tolerant:
    """A typed word as written (lower-cased, accents folded) and the edits it forgives."""

    word: str
    edits: int


def allowed_edits(word: str) -> int:
    """How many edits `word` (as written, folded) forgives: 0, 1 or 2 by its length."""
    if not word.isalpha() or len(word) < ONE_EDIT_CHARS:
        return 0
    return 1 if len(word) < TWO_EDITS_CHARS else 2


def tolerant(index: SearchIndex, word: str) -> Tolerant | None:
    """`word` (as parsed from a query) if it forgives typos, else None."""
    written = index.terms(word, stem=False)
    if len(written) != 1:
        return None
    edits = allowed_edits(written[0])
    return Tolerant(written[0], edits) if edits else None


def within_reach(word: Tolerant, candidates: Iterable[str]) -> list[str]:
    """The candidates within `word`'s edits, `word` itself excluded."""
    n, edits = len(word.word), word.edits
    distinct = {c for c in candidates if c != word.word and abs(len(c) - n) <= edits}
    found = process.extract(
        word.word, list(distinct), scorer=OSA.distance, score_cutoff=edits, limit=None
    )
    return [candidate for candidate, _, _ in found]


def corrected_words(
    index: SearchIndex, words: Sequence[Tolerant], texts: Iterable[str]
) -> dict[Tolerant, list[str]]:
    """For each typed word, the words of `texts` (as written) within its edits."""
    if not words:
        return {}
    written = {term for text in texts for term in index.terms(text, stem=False)}
    return {word: within_reach(word, written)[:MAX_CORRECTIONS] for word in words}


def corrected_stems(
    index: SearchIndex, words: Sequence[Tolerant], texts: Iterable[str]
) -> list[str]:
    """The stems of the corrections found in `texts`: what a snippet marks besides the
    typed words, so `<mark>Government</mark>` shows for `goverment`."""
    found = corrected_words(index, words, texts)
    corrections = sorted({c for cs in found.values() for c in cs})
    return sorted(set(index.terms(" ".join(corrections)))) if corrections else []


def word_query(fields: Sequence[str], word: str) -> tantivy.Query:
    """Articles with `word` (as written) in one of `fields`."""
    return Query.boolean_query(
        [(Occur.Should, Query.term_query(SCHEMA, WORD_FIELDS[f], word)) for f in fields]
    )


def fuzzy_query(fields: Sequence[str], word: Tolerant) -> tantivy.Query:
    """Articles with a word within `word`'s edits in one of `fields`."""
    return Query.boolean_query(
        [
            (Occur.Should, Query.fuzzy_term_query(SCHEMA, WORD_FIELDS[f], word.word, word.edits))
            for f in fields
        ]
    )
