"""Search that forgives, on both backends: typos=auto finds the articles of the word meant
(exact hits first, corrections marked), `suggestion` on a search that found nothing, the
words that stay exact, `search_in`. Expectations are written out from the records."""

import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.search.index import WORD_FIELDS, SearchIndex, index_path
from app.settings import Settings
from tests.factories import make_client, record, written_database

pytestmark = pytest.mark.anyio

ARTICLES = [
    (1, 2, "Government falls after vote", "The government lost a vote on Tuesday."),
    (2, 5, "New cabinet sworn in", "Neighbouring governments welcomed the new cabinet."),
    (3, 2, "Budget debate", "The goverment published its budget, misspelt in the release."),
    (4, 7, "Cover story", "Over the weekend the magazine cover showed a rover."),
    (5, 5, "Election results", "The election was close: officials counted every ballot."),
    (6, 2, "Local votes in spring", "Local elections are held in May; the election is open."),
    (7, 2, "Palmyra retaken", "Troops entered Palmyra, the ancient city in the desert."),
    (8, 7, "A selection of wines", "The shop sells a selection of wines from the region."),
    (9, 5, "Parliament dissolved", "The parliament was dissolved by decree on Friday."),
    (10, 7, "Palm oil prices", "Palm oil prices rose in the morning."),
    (11, 2, "The senator speaks", "A senator spoke for an hour."),
    (12, 5, "Senator resigns", "The senator resigned after the inquiry."),
    (13, 7, "Hearing", "The senator asked about the sector."),
    (14, 2, "Industry", "The sector grew."),
    (15, 5, "Weather", "Rain is expected in the west tomorrow."),
]


@pytest.fixture(scope="module")
def typos_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    records = [record(n, source_id=s, title=t, content=c) for n, s, t, c in ARTICLES]
    yield from written_database(template_url, tmp_path_factory.mktemp("typos"), records)


@pytest.fixture
async def api(typos_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(typos_url) as client:
        yield client


async def search(client: httpx.AsyncClient, q: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/articles", params={"q": q, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[int]:
    return [item["article_id"] for item in page["items"]]


async def test_a_misspelled_word_finds_the_articles_of_the_right_one(
    api: httpx.AsyncClient,
) -> None:
    page = await search(api, "goverment", typos="auto")
    # The article that has the word as typed comes first; its stem `gover` would have
    # matched `over`, `cover` and `rover` (article 4): edits count on words as written.
    assert ids(page)[0] == 3
    assert sorted(ids(page)) == [1, 2, 3]
    scores = [item["score"] for item in page["items"]]
    assert scores[0] > 0
    assert scores[1:] == [0.0, 0.0]
    typed = await search(api, "goverment")  # typos=0, the default: as typed
    assert ids(typed) == [3]
    assert typed["items"][0]["score"] == scores[0]  # as typed, the same score either way
    assert ids(await search(api, "Plamyra", typos="auto")) == [7]  # a transposition
    # 8 letters: one edit. Corrected hits score 0 and come newest first.
    page = await search(api, "elcetion", typos="auto")
    assert ids(page) == [6, 5]
    assert [item["score"] for item in page["items"]] == [0.0, 0.0]
    assert ids(await search(api, "parliemant", typos="auto")) == [9]  # 10 letters: two
    assert ids(await search(api, "elcetoin", typos="auto")) == []  # 8 letters, two edits
    # An 8-letter word forgives one edit: `selection` is one away from `election`.
    assert ids(await search(api, "election", typos="auto", sort="relevance"))[-1] == 8


async def test_exact_hits_rank_above_every_corrected_one(api: httpx.AsyncClient) -> None:
    exact = set(ids(await search(api, "election")))
    assert exact == {5, 6}  # `elections` is a form of it
    page = await search(api, "election", typos="auto")
    assert set(ids(page)[:2]) == exact
    assert ids(page)[2:] == [8]  # `selection`, one edit away: a correction, ranked below
    scores = [item["score"] for item in page["items"]]
    assert min(scores[:2]) > scores[2]
    # Each word as typed or corrected: 1 has `government` and `vote`; 3 lacks `vote`.
    assert ids(await search(api, "goverment vote", typos="auto")) == [1]
    assert ids(await search(api, "elcetion local", typos="auto")) == [6]


async def test_snippets_mark_the_corrected_words_as_written(api: httpx.AsyncClient) -> None:
    page = await search(api, "goverment", typos="auto")
    snippets = {item["article_id"]: item["snippet"] for item in page["items"]}
    assert "<mark>goverment</mark>" in snippets[3]
    assert "<mark>government</mark>" in snippets[1]
    assert "<mark>governments</mark>" in snippets[2]
    titles = await search(api, "Parliemant", typos="auto", search_in="title")
    assert titles["items"][0]["snippet"] == "<mark>Parliament</mark> dissolved"


async def test_short_words_phrases_quotes_prefixes_and_exclusions_stay_exact(
    api: httpx.AsyncClient,
) -> None:
    assert ids(await search(api, "plam", typos="auto")) == []  # 4 letters: exact
    assert ids(await search(api, "palm", typos="auto")) == [10]
    assert ids(await search(api, '"ancient ctiy"', typos="auto")) == []  # a phrase's words
    assert ids(await search(api, '"ancient city"', typos="auto")) == [7]
    assert ids(await search(api, '"goverment"', typos="auto")) == [3]  # quoted: as typed
    assert ids(await search(api, "plamyr*", typos="auto")) == []  # a prefix: as typed
    assert ids(await search(api, "palmyr*", typos="auto")) == [7]
    assert ids(await search(api, "senat0r", typos="auto")) == []  # a digit: not a word
    # An exclusion removes what it names as typed, not its neighbours (1 and 2 stay).
    assert sorted(ids(await search(api, "government -goverment", typos="auto"))) == [1, 2]


async def test_a_search_that_finds_nothing_suggests_the_most_frequent_near_word(
    api: httpx.AsyncClient,
) -> None:
    # `sector` comes first alphabetically, `senator` is in more articles: frequency wins.
    page = await search(api, "sentor")
    assert page["items"] == []
    assert page["suggestion"] == "senator"
    assert (await search(api, "Elcetion results"))["suggestion"] == "Election results"
    # The query as typed, its operators and case kept, only the unknown words replaced.
    page = await search(api, '"Plamyra" OR parliemant -SENTOR', typos="0")
    assert page["suggestion"] == '"Palmyra" OR parliament -SENATOR'
    assert (await search(api, "plamyra*"))["suggestion"] == "palmyra*"
    # Whatever typos says: typos=auto found nothing either, and suggests all the same.
    page = await search(api, "plamyra elcetion zzzzzqqq", typos="auto")
    assert page["items"] == []
    assert page["suggestion"] == "palmyra election zzzzzqqq"
    # A word some article holds as typed is no typo (`goverment`, article 3).
    assert (await search(api, "goverment plamyra"))["suggestion"] == "goverment palmyra"


async def test_no_suggestion_when_something_is_found_or_nothing_is_close(
    api: httpx.AsyncClient,
) -> None:
    assert (await search(api, "zzzzzqqq"))["suggestion"] is None  # nothing within reach
    assert (await search(api, "senator"))["suggestion"] is None  # hits
    assert (await search(api, "sentor", typos="auto"))["suggestion"] is None  # hits
    # Every word known, no article with both: nothing to correct.
    assert (await search(api, "palmyra senator"))["suggestion"] is None
    assert (await search(api, "tpyo"))["suggestion"] is None  # short: no edits allowed
    plain = (await api.get("/v1/articles")).json()
    assert "suggestion" not in plain  # a list without a search has no such key


async def test_search_in_title_content_or_both(api: httpx.AsyncClient) -> None:
    # `senator` is in the titles of 11 and 12 and the bodies of 11, 12 and 13.
    both = await search(api, "senator", count="exact", facet="source_id")
    title = await search(api, "senator", search_in="title", count="exact", facet="source_id")
    body = await search(api, "senator", search_in="content", count="exact")
    assert sorted(ids(both)) == [11, 12, 13]
    assert sorted(ids(title)) == [11, 12]
    assert sorted(ids(body)) == [11, 12, 13]
    assert (both["total"], title["total"], body["total"]) == (3, 2, 3)
    assert title["facets"]["source_id"] == [{"value": 2, "count": 1}, {"value": 5, "count": 1}]
    # A title-only hit's snippet is its marked title, a body-only search's never the title.
    assert {item["snippet"] for item in title["items"]} == {
        "<mark>Senator</mark> resigns",
        "The <mark>senator</mark> speaks",
    }
    assert all("speaks" not in item["snippet"] for item in body["items"])
    assert ids(await search(api, "hearing", search_in="content")) == []
    assert ids(await search(api, "hearing", search_in="title")) == [13]
    same = await search(api, "senator", search_in="title,content", count="exact")
    assert (same["total"], sorted(ids(same))) == (3, [11, 12, 13])
    repeated = await api.get(
        "/v1/articles", params=[("q", "senator"), ("search_in", "title"), ("search_in", "content")]
    )
    assert sorted(ids(repeated.json())) == [11, 12, 13]
    bad = await api.get("/v1/articles", params={"q": "senator", "search_in": "author"})
    assert bad.status_code == 422
    assert [e["name"] for e in bad.json()["errors"]] == ["search_in"]


async def test_typos_reach_a_sources_articles_and_the_exports_not_similar(
    api: httpx.AsyncClient,
) -> None:
    params = {"q": "goverment", "typos": "auto"}
    page = (await api.get("/v1/sources/2/articles", params=params)).json()
    assert sorted(ids(page)) == [1, 3]
    export = await api.get("/v1/export.jsonl", params={"q": "goverment", "typos": "auto"})
    assert [line.count('"article_id"') for line in export.text.splitlines()] == [1, 1, 1]
    similar = await api.get("/v1/articles/1/similar", params={"typos": "auto"})
    assert similar.status_code == 200  # accepted, and ignored
    bad = await api.get("/v1/articles", params={"q": "x", "typos": "2"})
    assert bad.status_code == 422


async def test_cursor_pages_keep_exact_hits_first(api: httpx.AsyncClient) -> None:
    first = await search(api, "goverment", typos="auto", limit=1)
    pages = [ids(first)]
    page = first
    while page["next"]:
        page = (await api.get(page["next"])).json()
        pages.append(ids(page))
    assert pages[0] == [3]
    assert sorted(i for page_ids in pages for i in page_ids) == [1, 2, 3]
    other = await api.get(first["next"].replace("typos=auto", "typos=0"))
    assert other.status_code == 400  # a cursor holds to its search's typos


# -- Counts against a brute force over the index's vocabulary --------------------------------

BASE_WORDS = [
    *("senator", "senate", "sector", "election", "elections", "selection", "parliament"),
    *("parliaments", "government", "governor", "palmyra", "palm", "tree", "vote", "votes"),
    *("voter", "budget", "budgets", "cabinet", "minister", "ministers", "monster", "desert"),
    *("dessert", "reform", "reforms", "inform", "harbour", "harbor", "labour", "labor"),
    *("refugee", "refuge", "ceasefire", "cease", "treaty", "treat", "meeting", "melting"),
    *("summit", "submit", "council", "counsel", "consul"),
]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def misspelt(word: str, rng: random.Random) -> str:
    """`word` with one random edit: a letter inserted, deleted, changed or two swapped."""
    i = rng.randrange(len(word))
    kind = rng.choice("idst") if len(word) > 1 else "i"
    if kind == "i":
        return word[:i] + rng.choice(LETTERS) + word[i:]
    if kind == "d":
        return word[:i] + word[i + 1 :]
    if kind == "s":
        return word[:i] + rng.choice(LETTERS) + word[i + 1 :]
    i = min(i, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def near_corpus() -> tuple[list[dict[str, Any]], list[str]]:
    """Articles of real words and their misspellings, and the vocabulary they use."""
    rng = random.Random(26)
    vocabulary = list(BASE_WORDS)
    vocabulary += [misspelt(rng.choice(BASE_WORDS), rng) for _ in range(40)]
    records = []
    for n in range(1, 151):
        title = " ".join(rng.choices(vocabulary, k=rng.randint(2, 4)))
        body = " ".join(rng.choices(vocabulary, k=rng.randint(8, 20)))
        source_id = (2, 5, 7)[n % 3]
        records.append(record(n, source_id=source_id, title=title.capitalize(), content=body))
    return records, vocabulary


def osa(a: str, b: str) -> int:
    """The optimal string alignment distance: Damerau-Levenshtein without editing a
    substring twice, the distance tantivy's automaton counts."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


class Brute:
    """Which articles a word matches, worked out from the texts and the index's vocabulary
    (its terms, read back from its dictionary) by an edit distance computed here."""

    def __init__(self, index: SearchIndex, records: list[dict[str, Any]]) -> None:
        self.index = index
        searcher = index.searcher()
        self.vocabulary = {
            field: {term for term, _ in searcher.terms_with_prefix(words, "")}
            for field, words in WORD_FIELDS.items()
        }
        # Each article's words as written and their stems, by field.
        self.texts = {
            (rec["article_id"], field): (
                set(index.terms(rec[field], stem=False)),
                set(index.terms(rec[field])),
            )
            for rec in records
            for field in WORD_FIELDS
        }

    def edits(self, word: str) -> int:
        if not word.isalpha() or len(word) < 5:
            return 0
        return 1 if len(word) <= 8 else 2

    def matches(self, word: str, fields: tuple[str, ...], *, typos: bool) -> set[int]:
        stems = set(self.index.terms(word))
        written = self.index.terms(word, stem=False)[0]
        edits = self.edits(written) if typos else 0
        near = {
            field: {u for u in self.vocabulary[field] if osa(u, written) <= edits}
            for field in fields
        }
        return {
            article_id
            for (article_id, field), (words, word_stems) in self.texts.items()
            if field in fields and (word_stems & stems or words & near[field])
        }


@pytest.fixture(scope="module")
def near_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    records, _ = near_corpus()
    yield from written_database(template_url, tmp_path_factory.mktemp("near"), records)


async def walk(client: httpx.AsyncClient, **params: str | int) -> list[int]:
    page = (await client.get("/v1/articles", params=params)).json()
    found = ids(page)
    while page["next"]:
        page = (await client.get(page["next"])).json()
        found += ids(page)
    return found


async def test_counts_facets_and_pages_equal_a_brute_force_over_the_vocabulary(
    near_url: str,
) -> None:
    records, _ = near_corpus()
    source = {r["article_id"]: r["source_id"] for r in records}
    rng = random.Random(4)
    # Words of 5 to 11 letters as the corpus writes them, misspelt once, and twice.
    words = ["cease", "voter", "treaty", "election", "selection", "parliament"]
    words += [misspelt(w, rng) for w in ("labour", "summit", "meeting", "ceasefire", "refuge")]
    words += [misspelt(misspelt(w, rng), rng) for w in ("parliaments", "government")]
    async with make_client(near_url) as client:
        index = SearchIndex.open(index_path(Settings(database_url=near_url)))
        assert index is not None
        brute = Brute(index, records)
        checked = 0
        for n, word in enumerate(words):
            other = words[(n + 7) % len(words)]
            fields = ("title",) if n % 4 == 3 else ("title", "content")
            exact = brute.matches(word, fields, typos=False)
            near = brute.matches(word, fields, typos=True)
            for q, expected, exact_first in (
                (word, near, exact),
                (f"{word} {other}", near & brute.matches(other, fields, typos=True), None),
                (f"{word} OR {other}", near | brute.matches(other, fields, typos=True), None),
                (f"{word} -{other}", near - brute.matches(other, fields, typos=False), None),
            ):
                params: dict[str, str | int] = {
                    "q": q,
                    "typos": "auto",
                    "search_in": ",".join(fields),
                    "limit": 20,
                }
                page = (
                    await client.get(
                        "/v1/articles", params={**params, "count": "exact", "facet": "source_id"}
                    )
                ).json()
                assert page["total"] == len(expected), q
                by_source = Counter(source[i] for i in expected)
                assert {f["value"]: f["count"] for f in page["facets"]["source_id"]} == by_source
                ranked = await walk(client, **params)
                assert sorted(ranked) == sorted(expected), q  # every hit once, no other
                if exact_first is not None:
                    assert set(ranked[: len(exact_first)]) == exact_first, q
                by_id = await walk(client, **params, sort="-article_id")
                assert by_id == sorted(expected, reverse=True), q
                checked += bool(expected - exact_first) if exact_first is not None else 0
        assert checked >= 5  # corrections made a difference in several of the searches
