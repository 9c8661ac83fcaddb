"""Full-text search: our query language, parsed once, rendered safely for each backend.

The language is the one people type into search boxes: words are ANDed, `"a phrase"`,
`-excluded`, and `OR` between two items. `parse` turns any text into a `SearchQuery` whose
words hold only letters and digits, so nothing a user types can reach FTS5's MATCH syntax
or `to_tsquery` raw. SQLite gets an FTS5 MATCH string with every phrase double-quoted;
PostgreSQL gets a tsquery built from `phraseto_tsquery` pieces joined by `tsquery_and`,
`tsquery_or` and `tsquery_not`. Knows nothing of HTTP.
"""

import html
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy import column as sql_column
from sqlmodel import Session

from app import models

MAX_QUERY_CHARS = 1000
# Letters and digits only: what both tokenizers (FTS5 unicode61, PostgreSQL's parser) keep.
_WORD = re.compile(r"[^\W_]+")
# Private-use markers around matched terms; HTML-escaping leaves them alone, then they
# become <mark> and </mark>. Chosen because no article text contains them.
MARK_START, MARK_END = "\x02", "\x03"
# Title hits count ten times as much as body hits in BM25 (PostgreSQL: weights A and B).
TITLE_WEIGHT, CONTENT_WEIGHT = 10.0, 1.0
SNIPPET_TOKENS = 24
_PG_CONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")
# MaxFragments=0 (one passage around the best match) costs half of fragment mode, which
# took ~1 ms a 3 KB body: ts_headline parses the whole text.
_HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12, MaxFragments=0"
)
_fts = table("article_fts", sql_column("rowid"), sql_column("article_fts"))


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words that must appear next to each other, in order (one word is a phrase of one)."""

    words: tuple[str, ...]


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

    def canonical(self) -> str:
        """A normal form: equal for queries that mean the same; used in cursors and caches."""
        parts = [" OR ".join(_quote(p) for p in group) for group in self.groups]
        parts += [f"-{_quote(p)}" for p in self.excluded]
        return " ".join(parts)


def _quote(phrase: Phrase) -> str:
    return '"' + " ".join(phrase.words).replace('"', '""') + '"'


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


def parse(q: str | None) -> SearchQuery | None:
    """The query `q` means, or None for no search (missing, empty or only spaces)."""
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
        phrase = Phrase(words)
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


# -- SQLite FTS5 ------------------------------------------------------------------------------


def _fts_any(phrases: tuple[Phrase, ...]) -> str:
    return " OR ".join(_quote(p) for p in phrases)


def fts_match(query: SearchQuery) -> str:
    """The FTS5 MATCH string for the positive part, minus the exclusions."""
    positive = " AND ".join(f"({_fts_any(group)})" for group in query.groups)
    if query.excluded:
        return f"({positive}) NOT ({_fts_any(query.excluded)})"
    return positive


def _fts_where(match: str) -> ColumnElement[bool]:
    return _fts.c.article_fts.op("MATCH")(literal(match))


def _fts_matching(match: str) -> Select[Any]:
    return select(_fts.c.rowid).where(_fts_where(match))


# -- PostgreSQL tsquery -----------------------------------------------------------------------


def _ts_phrase(phrase: Phrase) -> ColumnElement[Any]:
    return func.phraseto_tsquery(_PG_CONFIG, literal(" ".join(phrase.words)))


def _balanced(name: str, parts: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    """Join with a binary tsquery function as a balanced tree: depth log(n), not n.

    Hundreds of terms nested one inside the next would overflow the SQL compiler's stack.
    """
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    fn = getattr(func, name)
    result: ColumnElement[Any] = fn(
        _balanced(name, parts[:middle]), _balanced(name, parts[middle:])
    )
    return result


def _ts_any(phrases: tuple[Phrase, ...]) -> ColumnElement[Any]:
    return _balanced("tsquery_or", [_ts_phrase(p) for p in phrases])


def ts_query(query: SearchQuery) -> ColumnElement[Any]:
    """The tsquery for the positive part, minus the exclusions (needs `groups`)."""
    expr = _balanced("tsquery_and", [_ts_any(group) for group in query.groups])
    if query.excluded:
        expr = func.tsquery_and(expr, func.tsquery_not(_ts_any(query.excluded)))
    return expr


def _vector() -> ColumnElement[Any]:
    return literal_column(models.SEARCH_VECTOR)


# -- One interface for both -------------------------------------------------------------------


def condition(dialect: str, query: SearchQuery) -> ColumnElement[bool]:
    """A WHERE clause on `article` that keeps exactly the articles matching `query`."""
    article_id = models.article_table.c.article_id
    if query.matches_nothing:
        return literal(False)
    if dialect == "postgresql":
        if query.ranked:
            return _vector().bool_op("@@")(ts_query(query))
        return ~_vector().bool_op("@@")(_ts_any(query.excluded))
    if query.ranked:
        return article_id.in_(_fts_matching(fts_match(query)))
    return article_id.not_in(_fts_matching(_fts_any(query.excluded)))


def fts_count(query: SearchQuery) -> Select[Any]:
    """SQLite only: count the matches straight from the FTS index, without the article table."""
    return select(func.count()).select_from(_fts).where(_fts_where(fts_match(query)))


def ranked_hits(dialect: str, query: SearchQuery, where: list[ColumnElement[bool]]) -> Select[Any]:
    """(article_id, score) of every match passing `where`; higher score is more relevant.

    Needs `query.ranked`. The score is a float8 on both backends, so the value a cursor
    carries compares equal when the next page computes it again.
    """
    article = models.article_table
    if dialect == "postgresql":
        tsq = ts_query(query)
        score = cast(func.ts_rank_cd(_vector(), tsq), Float(precision=53))
        return select(article.c.article_id, score.label("score")).where(
            _vector().bool_op("@@")(tsq), *where
        )
    bm25 = func.bm25(literal_column("article_fts"), TITLE_WEIGHT, CONTENT_WEIGHT)
    stmt = select(_fts.c.rowid.label("article_id"), (-bm25).label("score"))
    if where:  # filters read article columns: join by rowid, one lookup per match
        stmt = stmt.select_from(_fts.join(article, article.c.article_id == _fts.c.rowid))
    return stmt.where(_fts_where(fts_match(query)), *where)


def highlight(raw: str) -> str:
    """HTML-escape a snippet, then turn our private markers into <mark> tags."""
    return html.escape(raw, quote=False).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def _pick(body: str, title: str) -> str:
    """The body's passage, unless only the title holds a match."""
    return body if MARK_START in body or MARK_START not in title else title


def decorations(
    session: Session, query: SearchQuery, ids: list[int], *, scores: bool
) -> dict[int, tuple[float | None, str]]:
    """Score (if `scores`; a ranked page has them already) and raw snippet for just the
    rows of one page, never for every match. The passage comes from the body; a row that
    matched only in its title gets its marked title instead."""
    if not ids or not query.ranked:
        return {}
    dialect = session.get_bind().dialect.name
    out: dict[int, tuple[float | None, str]] = {}
    if dialect == "postgresql":
        article = models.article_table
        tsq = ts_query(query)
        score = cast(func.ts_rank_cd(_vector(), tsq), Float(precision=53))
        stmt = select(
            article.c.article_id,
            score if scores else literal(None),
            func.ts_headline(_PG_CONFIG, article.c.content, tsq, _HEADLINE_OPTIONS),
            func.ts_headline(_PG_CONFIG, article.c.title, tsq, _HEADLINE_OPTIONS),
        ).where(article.c.article_id.in_(ids))
        for article_id, value, body, title in session.execute(stmt):
            out[article_id] = (value, _pick(body, title))
        return out
    stmt = _fts_decorations(scores)
    for article_id, value, body, head in session.execute(
        stmt, {"match": fts_match(query), "ids": ids}
    ):
        out[article_id] = (value, _pick(body, head))
    return out


@cache
def _fts_decorations(scores: bool) -> Select[Any]:
    """Built once: the MATCH string and the ids are its only parameters."""
    fts: ColumnElement[Any] = literal_column("article_fts")
    # bm25() first scans every match to count them (its IDF): only pay that when needed.
    bm25 = -func.bm25(fts, TITLE_WEIGHT, CONTENT_WEIGHT) if scores else literal(None)
    snippet = func.snippet(fts, 1, MARK_START, MARK_END, "…", SNIPPET_TOKENS)
    title = func.highlight(fts, 0, MARK_START, MARK_END)
    return select(_fts.c.rowid, bm25, snippet, title).where(
        _fts.c.article_fts.op("MATCH")(bindparam("match")),
        _fts.c.rowid.in_(bindparam("ids", expanding=True)),
    )
