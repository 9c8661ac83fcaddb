"""The search language: parsing, rendering for FTS5, snippet escaping. No database here."""

import pytest

from app.queries.cache import RevisionCache
from app.search.language import Phrase, SearchQuery, highlight, parse


def p(*words: str) -> Phrase:
    return Phrase(words)


@pytest.mark.parametrize("q", [None, "", "   ", "\t\n"])
def test_blank_is_no_search(q: str | None) -> None:
    assert parse(q) is None


@pytest.mark.parametrize(
    ("q", "groups", "excluded"),
    [
        ("Palmyra Syria", ((p("palmyra"),), (p("syria"),)), ()),
        ('"islamic state" palmyra', ((p("islamic", "state"),), (p("palmyra"),)), ()),
        ("syria OR iraq war", ((p("syria"), p("iraq")), (p("war"),)), ()),
        ("a OR b OR c", ((p("a"), p("b"), p("c")),), ()),
        ("war -syria", ((p("war"),),), (p("syria"),)),
        ('war -"islamic state"', ((p("war"),),), (p("islamic", "state"),)),
        ("-syria", (), (p("syria"),)),
        ('"unclosed phrase', ((p("unclosed", "phrase"),),), ()),
        ("covid-19", ((p("covid", "19"),),), ()),
        ("OR war OR", ((p("or"),), (p("war"),)), ()),
        ("war or peace", ((p("war"),), (p("or"),), (p("peace"),)), ()),
        ("- war", ((p("war"),),), ()),
        ("NEAR(a b)", ((p("near"),), (p("a"),), (p("b"),)), ()),
        ("Émile_Zola", ((p("émile", "zola"),),), ()),
    ],
)
def test_parse(
    q: str, groups: tuple[tuple[Phrase, ...], ...], excluded: tuple[Phrase, ...]
) -> None:
    assert parse(q) == SearchQuery(groups, excluded)


@pytest.mark.parametrize("q", ["***", '""', "🙂🙂", ":(", "- - -", "()", "-(***)", "_"])
def test_text_without_words_matches_nothing(q: str) -> None:
    query = parse(q)
    assert query is not None
    assert query.matches_nothing


@pytest.mark.parametrize(
    ("q", "canonical"),
    [
        ("cumu AND lema", '"cumu" "lema"'),
        ("palmyra NOT syria", '"palmyra" -"syria"'),
        ("NOT syria", '-"syria"'),
        ("(syria OR iraq) palmyra", '"syria" OR "iraq" "palmyra"'),
        ("palmyra (syria OR iraq)", '"palmyra" "syria" OR "iraq"'),
        ("(a b) OR c", '("a" "b") OR "c"'),
        ("-(a OR b) c", '"c" -"a" -"b"'),
        ("NOT (a b) c", '"c" -("a" "b")'),
        ("x (a -b)", '"x" "a" -"b"'),
        ("a OR NOT b", '"a" -"b"'),
        ("NEAR(a b)", '"near" "a" "b"'),
        ("(palm*)", '"palm"*'),
        # Operators with nothing to join, and lone parentheses, are plain text.
        ("palmyra AND", '"palmyra" "and"'),
        ("NOT", '"not"'),
        ("a NOT", '"a" "not"'),
        ("a AND AND b", '"a" "and" "b"'),
        ("((syria", '"syria"'),
        ("syria) OR (iraq", '"syria" OR "iraq"'),
        ('"(a OR b)" c', '"a or b" "c"'),
        ("and not or", '"and" "not" "or"'),
        ("a\tb\nc", '"a" "b" "c"'),
    ],
)
def test_and_not_and_parentheses(q: str, canonical: str) -> None:
    query = parse(q)
    assert query is not None
    assert query.canonical() == canonical


def test_parentheses_nest_only_so_deep() -> None:
    deep = parse("(" * 500 + "a b" + ")" * 500 + " OR c")
    assert deep is not None
    assert deep.canonical() == '("a" "b") OR "c"'


def test_equivalent_queries_share_a_canonical_form() -> None:
    a, b = parse("  Syria   OR iraq  "), parse("syria OR IRAQ")
    assert a is not None
    assert b is not None
    assert a.canonical() == b.canonical()
    c = parse("syria iraq")
    assert c is not None
    assert c.canonical() != a.canonical()


def test_highlight_escapes_text_and_marks_matches() -> None:
    assert (
        highlight('<b>\x02zebra\x03</b> & "x"') == '&lt;b&gt;<mark>zebra</mark>&lt;/b&gt; &amp; "x"'
    )


def test_revision_cache_serves_only_the_revision_it_was_computed_at() -> None:
    cache = RevisionCache(max_weight=100)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_compute("k", 7, compute) == 1
    assert cache.get_or_compute("k", 7, compute) == 1
    assert cache.get_or_compute("k", 8, compute) == 2  # an ingest raised the revision


def test_revision_cache_evicts_least_recent_by_weight() -> None:
    cache = RevisionCache(max_weight=100)
    cache.put("a", 1, "A", weight=20)
    cache.put("b", 1, "B", weight=20)
    cache.put("too-big", 1, "X", weight=60)  # over a quarter of the budget: not kept
    assert cache.get("too-big", 1) is None
    assert cache.get("a", 1) == "A"  # now the most recent
    for key in "cdef":
        cache.put(key, 1, key, weight=20)
    assert cache.get("b", 1) is None  # least recently used: evicted first
    assert [cache.get(k, 1) for k in "acdef"] == ["A", "c", "d", "e", "f"]


def test_a_star_after_the_last_word_marks_a_prefix() -> None:
    assert parse("palm*") == SearchQuery(((Phrase(("palm",), prefix=True),),), ())
    assert parse('"islamic sta*"') == SearchQuery(((Phrase(("islamic", "sta"), prefix=True),),), ())
    assert parse("foo*bar") == SearchQuery(((Phrase(("foo", "bar")),),), ())
    star, plain = parse("palm*"), parse("palm")
    assert star is not None
    assert plain is not None
    assert star.canonical() != plain.canonical()  # cursors and caches tell them apart


def test_a_quoted_word_is_kept_exact_apart_from_the_same_word_unquoted() -> None:
    quoted, plain = parse('"palmyra"'), parse("palmyra")
    assert quoted == SearchQuery(((Phrase(("palmyra",), exact=True),),), ())
    assert plain == SearchQuery(((Phrase(("palmyra",)),),), ())
    assert quoted is not None
    assert plain is not None
    assert quoted.canonical() != plain.canonical()  # typos=auto corrects only the second
    # A phrase of several words is exact anyway, and its form is as before.
    assert parse('"islamic state"') == SearchQuery(((p("islamic", "state"),),), ())
