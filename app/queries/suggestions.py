""" "Did you mean": a search that found nothing, its unknown words replaced by the index's
most frequent words within their typo reach.

A word is unknown when the fields searched hold none of its stems (nor, for a prefix, any
word it begins). Its candidates are the index's words as written within the edits the word
forgives (app/search/typos.py, whatever the search's `typos`): the index finds the articles
that hold one, and the words themselves are read from the start of those articles' texts,
SAMPLE_ARTICLES at a time, each round leaving out the articles of the words already found,
until none is left or SUGGEST_ROUNDS have run. The candidate most articles hold (in the
fields searched) replaces the word, in the query as it was typed. Takes a Session and the
request's view of the index; knows nothing of HTTP.
"""

import re
from collections.abc import Iterator, Mapping, Sequence

import tantivy
from sqlmodel import Session
from tantivy import Occur, Query

from app.queries import bodies
from app.search import matching, typos
from app.search.filters import ArticleFilter
from app.search.index import IndexView
from app.search.language import Phrase, SearchQuery
from app.search.options import field_names

SAMPLE_ARTICLES = 8
SUGGEST_ROUNDS = 4
_WORD = re.compile(r"[^\W_]+")  # as app/search/language.py reads words


def suggest(session: Session, index: IndexView, flt: ArticleFilter) -> str | None:
    """The search's text with each unknown word replaced, or None when no word could be."""
    query = flt.search
    if query is None or query.matches_nothing or flt.q is None:
        return None
    fields = field_names(flt.search_in)
    replaced: dict[str, str] = {}
    for word, prefix in _words(query):
        if word in replaced or len(replaced) >= typos.MAX_TOLERANT_WORDS:
            continue
        tolerant = typos.tolerant(index.index, word)
        if tolerant is None or not _unknown(index, fields, word, prefix=prefix):
            continue
        best = _most_frequent(session, index, fields, tolerant)
        if best is not None:
            replaced[word] = best
    return _replace_words(flt.q, replaced) if replaced else None


def _words(query: SearchQuery) -> Iterator[tuple[str, bool]]:
    """Every word of the query, excluded ones too, and whether it is typed as a prefix."""
    for phrase in _phrases(query):
        for i, word in enumerate(phrase.words):
            yield word, phrase.prefix and i == len(phrase.words) - 1


def _phrases(query: SearchQuery) -> Iterator[Phrase]:
    for clause in (*(c for group in query.groups for c in group), *query.excluded):
        if isinstance(clause, Phrase):
            yield clause
        else:
            yield from _phrases(clause)


def _unknown(index: IndexView, fields: Sequence[str], word: str, *, prefix: bool) -> bool:
    """Whether no article holds `word` (a form of it; for a prefix, a word it begins) in
    `fields`."""
    searcher = index.searcher
    stems = index.index.terms(word)
    if any(searcher.doc_freq(f, stem) for f in fields for stem in stems):
        return False
    if prefix:
        typed = index.index.terms(word, stem=False)
        return not any(searcher.terms_with_prefix(f, t, limit=1) for f in fields for t in typed)
    return bool(stems)


def _most_frequent(
    session: Session, index: IndexView, fields: Sequence[str], word: typos.Tolerant
) -> str | None:
    """The word within `word`'s edits that most articles hold in `fields` (ties: the first
    in alphabetical order); None when there is none."""
    searcher = index.searcher
    near = typos.fuzzy_query(fields, word)
    found: set[str] = set()
    read: list[str] = []  # the texts read, where the winner's spelling is found
    passed: list[int] = []  # articles whose match lies past the text read
    window = matching.SNIPPET_WINDOW_CHARS
    for _ in range(SUGGEST_ROUNDS):
        clauses: list[tuple[Occur, tantivy.Query]] = [(Occur.Must, near)]
        clauses += [(Occur.MustNot, typos.word_query(fields, w)) for w in sorted(found)]
        if passed:
            clauses.append((Occur.MustNot, matching.ids_query(passed)))
        sample = matching.Compiled(Query.boolean_query(clauses), None)
        ids = matching.by_id(searcher, sample, SAMPLE_ARTICLES, descending=True)
        if not ids:
            break
        texts = bodies.body_starts(session, ids, window)
        searched = [
            text
            for title, body in texts.values()
            for f, text in (("title", title), ("content", body))
            if f in fields
        ]
        read += searched
        new = set(typos.corrected_words(index.index, [word], searched)[word]) - found
        if not new:
            passed += ids
        found |= new
        if len(found) >= typos.MAX_CORRECTIONS:
            break
    counts = {
        w: matching.count(searcher, matching.Compiled(typos.word_query(fields, w), None))
        for w in found
    }
    if not counts:
        return None
    best = min(counts, key=lambda w: (-counts[w], w))
    return _written(index, best, read)


def _written(index: IndexView, folded: str, texts: Sequence[str]) -> str:
    """How the texts most often write the word the index folds to `folded` (`élection`
    for `election`), in lower case."""
    tokens = [t.lower() for text in texts for t in _WORD.findall(text)]
    if folded in tokens:
        return folded
    near = sorted({t for t in tokens if abs(len(t) - len(folded)) <= 1})
    spelled = [t for t in near if index.index.terms(t, stem=False) == [folded]]
    return max(spelled, key=tokens.count) if spelled else folded


def _replace_words(text: str, replaced: Mapping[str, str]) -> str:
    """`text` with each word that `replaced` names (as parsed: lower case) replaced, in
    the case it was typed in (`Goverment` -> `Government`)."""

    def swap(match: re.Match[str]) -> str:
        typed = match.group()
        better = replaced.get(typed.lower())
        if better is None:
            return typed
        if typed.isupper() and len(typed) > 1:
            return better.upper()
        return better.capitalize() if typed[0].isupper() else better

    return _WORD.sub(swap, text)
