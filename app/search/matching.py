"""Our parsed queries and filters as tantivy queries, and what we ask of the index.

User text never reaches tantivy's query parser: `app/search/language.py` parses it into
phrases of letters and digits, and each phrase becomes term or phrase queries built here,
its words run through the index's own analyzer. A phrase matches in the title (weighted
TITLE_BOOST times) or in the body, or in the one of them the filter's `search_in` names;
with `typos=auto` a word also matches words a typo or two away (app/search/typos.py):
such hits score 0 and come after every hit that matches all words as typed, newest first.
Filters (sources, id range, ids) score nothing. Hits come back as article ids and BM25
scores; rows and snippets come from the database, a snippet from at most
SNIPPET_WINDOW_CHARS of the body and a more-like-this query from at most
SIMILAR_WINDOW_CHARS, so no request's cost grows with the size of one article. Knows
nothing of HTTP.
"""

import html
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import tantivy
from tantivy import FieldType, Occur, Order, Query

from app.dates import Unit, bucket_label, segments, to_micros
from app.errors import InvalidParameter
from app.models import MAX_ID
from app.search import typos
from app.search.filters import ArticleFilter
from app.search.index import BUCKET_FIELDS, PUBLISHED_AT, SCHEMA, IndexView, SearchIndex
from app.search.language import MARK_END, MARK_START, Clause, Phrase, SearchQuery
from app.search.options import Typos, field_names

TITLE_BOOST = 10.0
SNIPPET_CHARS = 160
# Snippets are cut from the body's first this many characters (the database sends no more):
# a match further in leaves the title or the excerpt as the snippet.
SNIPPET_WINDOW_CHARS = 20_000
# Similar articles are found from the title and this many characters of the body.
SIMILAR_WINDOW_CHARS = 50_000
# Words a prefix stands for, at most: as many as tantivy's phrase prefix query expands it to.
MAX_PREFIX_TERMS = 50
TEXT_FIELDS = ("title", "content")
# A set of ids at most this large is matched as a union of term queries: at a million
# articles tantivy's term set query (which walks the id dictionary) took 0.8 ms for 20 ids,
# 15 for 1,000 and 26 for 2,000, the union 0.07, 2.9 and 7.6; at 16,000 the set wins (52
# against 87 ms).
ID_CLAUSES = 4096

_ALL_ARTICLES = Query.range_query(SCHEMA, "article_id", FieldType.Unsigned, 1, MAX_ID)
_NOTHING = Query.empty_query()


@dataclass(frozen=True, slots=True)
class Compiled:
    """A search as the index runs it: `query` for hits and counts, `positive` for snippets
    (the terms a snippet marks, prefixes expanded to the words they found), the words that
    forgave typos (whose corrections a page marks too) and the text fields searched.

    With typos forgiven, `query`'s hits are the union of `exact`, the hits of the search as
    typed (scored as without typos), and `corrected`, those that needed a correction (score
    0): `top` takes the second in id order, since their scores all tie."""

    query: tantivy.Query
    positive: tantivy.Query | None
    tolerant: tuple[typos.Tolerant, ...] = ()
    fields: tuple[str, ...] = TEXT_FIELDS
    exact: tantivy.Query | None = None
    corrected: tantivy.Query | None = None


@dataclass(slots=True)
class _Scope:
    """What compiling one search reads: the request's view, the fields searched, and (with
    typos=auto only) the words made tolerant so far."""

    view: IndexView
    fields: tuple[str, ...]
    tolerant: list[typos.Tolerant] | None = None

    def exact(self) -> "_Scope":
        return replace(self, tolerant=None)


def _field_phrase(field: str, terms: list[str | tuple[int, str]]) -> tantivy.Query:
    if len(terms) == 1:
        return Query.term_query(SCHEMA, field, terms[0])
    return Query.phrase_query(SCHEMA, field, terms)


def _boosted(field_name: str, query: tantivy.Query) -> tantivy.Query:
    return Query.boost_query(query, TITLE_BOOST) if field_name == "title" else query


def _phrase(scope: _Scope, phrase: Phrase) -> tantivy.Query:
    """Title or body, the words next to each other in order, as the analyzer cuts them;
    for a prefix, the last word as typed (unstemmed) matching as a prefix, and its word
    forms when it may be a whole word (`_whole_word`)."""
    view = scope.view
    terms: list[str | tuple[int, str]] = [
        term for word in phrase.words for term in view.index.terms(word)
    ]
    if not terms:
        return _NOTHING
    found = []
    if not phrase.prefix or _whole_word(scope, phrase.words[-1]):
        found += [_boosted(f, _field_phrase(f, terms)) for f in scope.fields]
    if phrase.prefix:
        *head, last = phrase.words
        typed: list[str | tuple[int, str]] = [t for w in head for t in view.index.terms(w)]
        typed += view.index.terms(last, stem=False)
        found += [_boosted(f, Query.phrase_prefix_query(SCHEMA, f, typed)) for f in scope.fields]
    return _any(found)


def _forgiving(scope: _Scope, phrase: Phrase, tolerant: list[typos.Tolerant]) -> tantivy.Query:
    """The articles a phrase matches with typos forgiven: as typed, or for a lone word that
    forgives typos (up to MAX_TOLERANT_WORDS of them), corrected too. Unscored."""
    exact = _phrase(scope, phrase)
    word = None
    if len(phrase.words) == 1 and not (phrase.prefix or phrase.exact):
        word = typos.tolerant(scope.view.index, phrase.words[0])
    if word is None or (word not in tolerant and len(tolerant) >= typos.MAX_TOLERANT_WORDS):
        return exact
    if word not in tolerant:
        tolerant.append(word)
    near = typos.fuzzy_query(scope.fields, word)
    return Query.boolean_query([(Occur.Should, exact), (Occur.Should, near)])


def _whole_word(scope: _Scope, word: str) -> bool:
    """Whether a prefix `word*` also finds the forms of `word` as a whole word (`cities*`
    finds `city`). Not when the stemmer cut a word still being typed and longer words
    begin with it: `viing*` finds `viingnoca`, not the `vi` that `viing` stems to."""
    view = scope.view
    stems, typed = view.index.terms(word), view.index.terms(word, stem=False)
    if not stems or not typed:
        return False
    stem, text = stems[0], typed[0]
    if stem == text or not text.startswith(stem):
        return True
    searcher = view.searcher
    return not any(searcher.terms_with_prefix(f, text, limit=1) for f in scope.fields)


def _marked_terms(scope: _Scope, phrases: Iterable[Phrase]) -> tantivy.Query | None:
    """The terms a snippet marks: each word's stem, and for a prefix the words it found in
    the index (and its own forms, as `_phrase` matches them)."""
    view = scope.view
    searcher = view.searcher
    terms: dict[tuple[str, str], None] = {}
    for phrase in phrases:
        whole = phrase.words[:-1] if phrase.prefix else phrase.words
        if phrase.prefix and _whole_word(scope, phrase.words[-1]):
            whole = phrase.words
        for f in scope.fields:
            terms.update(((f, t), None) for word in whole for t in view.index.terms(word))
        if phrase.prefix:
            for text in view.index.terms(phrase.words[-1], stem=False):
                for f in scope.fields:
                    found = searcher.terms_with_prefix(f, text, limit=MAX_PREFIX_TERMS)
                    terms.update(((f, term), None) for term, _ in found)
    if not terms:
        return None
    return Query.boolean_query(
        [(Occur.Should, Query.term_query(SCHEMA, f, term)) for f, term in terms]
    )


def _clause(scope: _Scope, clause: Clause) -> tantivy.Query:
    """A phrase, or a parenthesised query as one boolean query."""
    if isinstance(clause, Phrase):
        if scope.tolerant is None:
            return _phrase(scope, clause)
        return _forgiving(scope, clause, scope.tolerant)
    return Query.boolean_query(_clauses(scope, clause))


def _clauses(scope: _Scope, query: SearchQuery) -> list[tuple[Occur, tantivy.Query]]:
    """Every group required (or, with none, every article), every exclusion refused (as
    typed: an exclusion never forgives typos)."""
    clauses: list[tuple[Occur, tantivy.Query]] = [
        (Occur.Must, _any([_clause(scope, c) for c in group])) for group in query.groups
    ]
    if not clauses:
        clauses.append((Occur.Must, Query.const_score_query(_ALL_ARTICLES, 0.0)))
    return clauses + [(Occur.MustNot, _clause(scope.exact(), c)) for c in query.excluded]


def _any(queries: Sequence[tantivy.Query]) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return Query.boolean_query([(Occur.Should, q) for q in queries])


def _filters(flt: ArticleFilter) -> list[tantivy.Query]:
    """The non-search filters, each scoring nothing."""
    found: list[tantivy.Query] = []
    if flt.source_ids:
        found.append(Query.term_set_query(SCHEMA, "source_id", sorted(set(flt.source_ids))))
    if flt.id_min is not None or flt.id_max is not None:
        found.append(
            Query.range_query(
                SCHEMA, "article_id", FieldType.Unsigned, flt.id_min or 1, flt.id_max or MAX_ID
            )
        )
    if flt.ids:
        found.append(_id_set(sorted(set(flt.ids))))
    if flt.published_from is not None or flt.published_before is not None:
        low = None if flt.published_from is None else to_micros(flt.published_from)
        high = None if flt.published_before is None else to_micros(flt.published_before)
        found.append(
            Query.range_query(
                SCHEMA, PUBLISHED_AT, FieldType.Integer, low, high, include_upper=high is None
            )
        )
    if flt.authors:
        found.append(Query.term_set_query(SCHEMA, "author", sorted(set(flt.authors))))
    if flt.url is not None:
        found.append(Query.term_query(SCHEMA, "url", flt.url))
    return [Query.const_score_query(q, 0.0) for q in found]


def compile_search(
    index: SearchIndex | IndexView,
    query: SearchQuery,
    flt: ArticleFilter,
    *,
    extra: Iterable[tantivy.Query] = (),
) -> Compiled:
    """The index query for `query` under `flt` (and any `extra` required clauses). Given a
    request's view, prefixes expand to the words of that view's commit.

    With typos=auto, an article matches when each of its words matches as typed or
    corrected (`_forgiving`); it scores its BM25 if it matches the search as typed, else 0.
    """
    view = index if isinstance(index, IndexView) else index.view()
    scope = _Scope(view, field_names(flt.search_in))
    positive = _marked_terms(scope, query.phrases())
    narrowing = [(Occur.Must, q) for q in (*_filters(flt), *extra)]
    clauses = _clauses(scope, query)
    tolerant: list[typos.Tolerant] = []
    forgiving = None
    if flt.typos is Typos.AUTO and query.ranked:
        forgiving = Query.boolean_query(_clauses(replace(scope, tolerant=tolerant), query))
    if forgiving is None or not tolerant:  # no word forgives typos: the search as typed
        return Compiled(Query.boolean_query(clauses + narrowing), positive, (), scope.fields)
    typed = Query.boolean_query(clauses)
    either = [(Occur.Must, Query.const_score_query(forgiving, 0.0)), (Occur.Should, typed)]
    corrected = [(Occur.Must, forgiving), (Occur.MustNot, typed)]
    return Compiled(
        Query.boolean_query(either + narrowing),
        positive,
        tuple(tolerant),
        scope.fields,
        exact=Query.boolean_query(clauses + narrowing),
        corrected=Query.boolean_query(corrected + narrowing),
    )


def compile_filter(flt: ArticleFilter) -> Compiled:
    """Every article under `flt`'s filters, without a search: what the index counts for a
    list (its facets and total) when it holds all the database does."""
    clauses = [(Occur.Must, Query.const_score_query(_ALL_ARTICLES, 0.0))]
    clauses += [(Occur.Must, q) for q in _filters(flt)]
    return Compiled(Query.boolean_query(clauses), None)


def _ids(searcher: tantivy.Searcher, hits: list[tuple[object, tantivy.DocAddress]]) -> list[int]:
    values = searcher.fast_field_values("article_id", [h[1] for h in hits])
    return [v for v in values if isinstance(v, int)]


def top(
    searcher: tantivy.Searcher, compiled: Compiled, limit: int, *, cut_ties: bool = False
) -> list[tuple[float, int]]:
    """The first `limit` of every match in (score desc, article_id desc) order: with typos
    forgiven, the hits as typed by score, then the corrected ones (score 0) by id.

    With `cut_ties`, for a ranking that only feeds a fusion: when equal scores straddle the
    `limit`th place, they are left out whole (fewer than `limit` come back), rather than all
    of them asked for (see `_top`), unless that would leave fewer than half."""
    if compiled.exact is None or compiled.corrected is None:
        return _top(searcher, compiled.query, limit, cut_ties=cut_ties)[0]
    pairs, every = _top(searcher, compiled.exact, limit, cut_ties=cut_ties)
    if every and len(pairs) < limit:
        corrected = Compiled(compiled.corrected, None)
        rest = by_id(searcher, corrected, limit - len(pairs), descending=True)
        pairs += [(0.0, article_id) for article_id in rest]
    return pairs


def _top(
    searcher: tantivy.Searcher, query: tantivy.Query, limit: int, *, cut_ties: bool = False
) -> tuple[list[tuple[float, int]], bool]:
    """The first `limit` of `query`'s matches in (score desc, article_id desc) order, and
    whether they are every match.

    The index cuts its top-k among equal scores in its own document order, which differs
    between hosts and between merges. So it is asked for one more, and when that one ties
    the last kept, for more until the cut falls strictly below the last score kept: then
    every tie of that score is in (at a million articles, a fifth of two-word queries tie
    at the 1,000th place, and the second ask costs ten times the first). With `cut_ties`,
    the tied group is dropped instead: what is left is the same on every host.
    """
    k = limit + 1  # one past the cut, to see whether it splits a tie
    while True:
        found = searcher.search(query, k, count=False)
        pairs = list(
            zip((float(h[0]) for h in found.hits), _ids(searcher, found.hits), strict=True)
        )
        pairs.sort(reverse=True)  # score, then article_id, both descending (no key: 2x faster)
        if len(pairs) < k or limit == 0 or pairs[limit - 1][0] > pairs[-1][0]:
            return pairs[:limit], len(pairs) <= limit
        if cut_ties:
            above = bisect_left(pairs, -pairs[-1][0], key=lambda p: -p[0])
            if above >= limit // 2:
                return pairs[:above], False
        k *= 4


def by_id(
    searcher: tantivy.Searcher,
    compiled: Compiled,
    limit: int,
    *,
    descending: bool,
) -> list[int]:
    """Up to `limit` matching ids in id order (put the cursor's bound in `compiled`)."""
    found = searcher.search(
        compiled.query,
        limit,
        count=False,
        order_by_field="article_id",
        order=Order.Desc if descending else Order.Asc,
    )
    return [int(h[0]) for h in found.hits]


def by_date(
    searcher: tantivy.Searcher,
    compiled: Compiled,
    limit: int,
    *,
    descending: bool,
    backward: bool,
    after: tuple[object, ...] | None,
) -> list[int]:
    """Up to `limit` matching ids in (published_at, article_id) order, undated last in either
    direction (app/dates.py `segments`), strictly past the key `after` (microseconds or
    None, article_id) in the walk's direction."""
    ids: list[int] = []
    from_undated = None if after is None else after[0] is None
    for n, segment in enumerate(segments(backward=backward, from_undated=from_undated)):
        key = after if n == 0 else None
        wanted = limit - len(ids)
        if segment == "dated":
            ids += _dated(searcher, compiled, wanted, descending, key)
        else:
            clauses = [(Occur.Must, compiled.query), (Occur.MustNot, _DATED)]
            if key is not None:
                last = key[1]
                assert isinstance(last, int)
                clauses.append((Occur.Must, id_bound(last, descending=descending)))
            narrowed = Compiled(Query.boolean_query(clauses), None)
            ids += by_id(searcher, narrowed, wanted, descending=descending)
        if len(ids) >= limit:
            break
    return ids


_DATED = Query.exists_query(PUBLISHED_AT)


def _dated(
    searcher: tantivy.Searcher,
    compiled: Compiled,
    limit: int,
    descending: bool,
    after: tuple[object, ...] | None,
) -> list[int]:
    """The first `limit` dated matches by (published_at, article_id) past `after`.

    The index orders by one field and cuts ties at random, so the ties of the last date
    taken are asked for again, in id order: every article before that date is in already.
    """
    clauses = [(Occur.Must, compiled.query), (Occur.Must, _DATED)]
    if after is not None:
        clauses.append((Occur.Must, _date_bound(after, descending)))
    query = Query.boolean_query(clauses)
    order = Order.Desc if descending else Order.Asc
    found = searcher.search(query, limit, count=False, order_by_field=PUBLISHED_AT, order=order)
    pairs = sorted(
        zip((int(h[0]) for h in found.hits), _ids(searcher, found.hits), strict=True),
        reverse=descending,
    )
    if len(pairs) < limit:
        return [p[1] for p in pairs]
    last = pairs[-1][0]
    before = [p[1] for p in pairs if p[0] != last]
    ties = Query.boolean_query([(Occur.Must, query), (Occur.Must, _on_date(last))])
    rest = by_id(searcher, Compiled(ties, None), limit - len(before), descending=descending)
    return before + rest


def _on_date(micros: int) -> tantivy.Query:
    return Query.range_query(SCHEMA, PUBLISHED_AT, FieldType.Integer, micros, micros)


def _date_bound(after: tuple[object, ...], descending: bool) -> tantivy.Query:
    """Dated articles strictly past (published_at, article_id) `after` in a walk's direction."""
    micros, article_id = after
    assert isinstance(micros, int)
    assert isinstance(article_id, int)
    if descending:
        earlier = Query.range_query(
            SCHEMA, PUBLISHED_AT, FieldType.Integer, None, micros, include_upper=False
        )
    else:
        earlier = Query.range_query(
            SCHEMA, PUBLISHED_AT, FieldType.Integer, micros, None, include_lower=False
        )
    same = Query.boolean_query(
        [(Occur.Must, _on_date(micros)), (Occur.Must, id_bound(article_id, descending=descending))]
    )
    return Query.boolean_query([(Occur.Should, earlier), (Occur.Should, same)])


def id_bound(after: int, *, descending: bool) -> tantivy.Query:
    """Ids strictly past `after` in a walk's direction."""
    if descending:
        return (
            Query.range_query(SCHEMA, "article_id", FieldType.Unsigned, 1, after - 1)
            if after > 1
            else _NOTHING
        )
    return Query.range_query(SCHEMA, "article_id", FieldType.Unsigned, after + 1, MAX_ID)


def ids_query(ids: Sequence[int]) -> tantivy.Query:
    """The articles with these ids, scoring nothing."""
    return Query.const_score_query(_id_set(ids), 0.0)


def _id_set(ids: Sequence[int]) -> tantivy.Query:
    """The articles with these ids: up to ID_CLAUSES of them, a union of one term query
    each (a search by meaning's count and facets name its ~1,000 hits this way); past that
    tantivy's term set query, which walks the id dictionary instead."""
    if len(ids) > ID_CLAUSES:
        return Query.term_set_query(SCHEMA, "article_id", list(ids))
    return Query.boolean_query(
        [(Occur.Should, Query.term_query(SCHEMA, "article_id", i)) for i in ids]
    )


def count(searcher: tantivy.Searcher, compiled: Compiled) -> int:
    found: Any = searcher.search(compiled.query, 1, count=True)  # the stubs omit `count`
    return int(found.count or 0)


def scores(searcher: tantivy.Searcher, compiled: Compiled, ids: Sequence[int]) -> dict[int, float]:
    """Each of `ids`'s score under `compiled` (those that match)."""
    if not ids:
        return {}
    narrowed = Query.boolean_query([(Occur.Must, compiled.query), (Occur.Must, ids_query(ids))])
    found = searcher.search(narrowed, len(ids), count=False)
    return dict(zip(_ids(searcher, found.hits), (float(h[0]) for h in found.hits), strict=True))


def source_counts(searcher: tantivy.Searcher, compiled: Compiled) -> list[dict[str, int]]:
    """Matches per source: most first, then by source_id."""
    result = searcher.aggregate(
        compiled.query, {"s": {"terms": {"field": "source_id", "size": 65_000}}}
    )
    buckets = result["s"]["buckets"]
    counted = [{"value": int(b["key"]), "count": int(b["doc_count"])} for b in buckets]
    counted.sort(key=lambda f: (-f["count"], f["value"]))
    return counted


# A facet holds at most this many buckets: 27 years of days, or any span of months.
MAX_DATE_BUCKETS = 10_000


def date_counts(
    searcher: tantivy.Searcher, compiled: Compiled, unit: Unit
) -> list[tuple[str, int]]:
    """Dated matches per calendar bucket of `unit`, in time order (undated ones aside)."""
    field = BUCKET_FIELDS[unit]
    result = searcher.aggregate(
        compiled.query, {"d": {"terms": {"field": field, "size": MAX_DATE_BUCKETS + 1}}}
    )
    buckets = result["d"]["buckets"]
    if len(buckets) > MAX_DATE_BUCKETS or result["d"].get("sum_other_doc_count"):
        raise too_many_buckets(unit)
    numbered = sorted((int(b["key"]), int(b["doc_count"])) for b in buckets)
    return [(bucket_label(number, unit), n) for number, n in numbered]


def too_many_buckets(unit: Unit) -> InvalidParameter:
    return InvalidParameter(
        f"More than {MAX_DATE_BUCKETS} {unit.value}s hold matches: narrow the list with "
        "published_from and published_to, or ask for a coarser facet.",
        parameter="facet",
    )


def all_ranked(
    searcher: tantivy.Searcher, compiled: Compiled, cap: int
) -> list[tuple[float, int]] | None:
    """Every match best first, or None when there are more than `cap`."""
    total = count(searcher, compiled)
    if total > cap:
        return None
    return top(searcher, compiled, max(total, 1))


def similar_query(title: str, content: str, article_id: int, flt: ArticleFilter) -> tantivy.Query:
    """More like this article (its title and body as the database holds them), not itself."""
    like = Query.more_like_this_document_fields_query(
        SCHEMA,
        {"title": [title], "content": [content]},
        min_doc_frequency=1,
        min_term_frequency=1,
        max_query_terms=25,
    )
    clauses = [(Occur.Must, like), (Occur.MustNot, ids_query([article_id]))]
    clauses += [(Occur.Must, q) for q in _filters(flt)]
    return Query.boolean_query(clauses)


class Snippets:
    """Marked passages for one page of hits, cut from the database's copy of each text:
    from the fields searched (a title-only search's snippet is its marked title). Besides
    the search's own terms they mark `corrected`, the stems of the corrections of its
    tolerant words found on the page (typos.corrected_stems)."""

    def __init__(
        self, searcher: tantivy.Searcher, compiled: Compiled, corrected: Iterable[str] = ()
    ) -> None:
        self.body = self.title = None
        marked = [(Occur.Should, compiled.positive)] if compiled.positive is not None else []
        marked += [
            (Occur.Should, Query.term_query(SCHEMA, f, stem))
            for stem in corrected
            for f in compiled.fields
        ]
        if not marked:
            return
        positive = marked[0][1] if len(marked) == 1 else Query.boolean_query(marked)
        if "content" in compiled.fields:
            self.body = tantivy.SnippetGenerator.create(searcher, positive, SCHEMA, "content")
            self.body.set_max_num_chars(SNIPPET_CHARS)
        if "title" in compiled.fields:
            self.title = tantivy.SnippetGenerator.create(searcher, positive, SCHEMA, "title")
            self.title.set_max_num_chars(1_000)

    def snippet(self, title: str, content: str, fallback: str, *, more: bool = False) -> str:
        """HTML: the body's best passage with matches in <mark>, else the marked title when
        only it matched, else `fallback` (the excerpt) escaped. `content` is the start of
        the body (SNIPPET_WINDOW_CHARS at most); `more` says the body goes on after it."""
        if self.body is not None:
            doc = tantivy.Document()
            doc.add_text("content", content)
            body = self.body.snippet_from_doc(doc)
            if body.highlighted():
                span = body.fragment_range()
                return _marked(
                    body.fragment(),
                    body.highlighted(),
                    before=span.start > 0,
                    after=more or span.end < len(content.encode()),
                )
        if self.title is not None:
            doc = tantivy.Document()
            doc.add_text("title", title)
            head = self.title.snippet_from_doc(doc)
            if head.highlighted():
                return _marked(head.fragment(), head.highlighted(), before=False, after=False)
        return html.escape(fallback, quote=False)


def _marked(fragment: str, ranges: Sequence[Any], *, before: bool, after: bool) -> str:
    """`fragment` escaped, each range (byte offsets into its UTF-8) wrapped in <mark>."""
    raw = fragment.encode()
    parts: list[str] = []
    last = 0
    for start, end in sorted((r.start, r.end) for r in ranges):
        if start < last:
            continue
        parts.append(html.escape(raw[last:start].decode(errors="replace"), quote=False))
        parts.append(
            MARK_START
            + html.escape(raw[start:end].decode(errors="replace"), quote=False)
            + MARK_END
        )
        last = end
    parts.append(html.escape(raw[last:].decode(errors="replace"), quote=False))
    text = "".join(parts).strip().replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    return ("…" if before else "") + text + ("…" if after else "")
