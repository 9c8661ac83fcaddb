"""Search, filters, sorts, fields, counts and facets over HTTP, on both backends.

A small corpus is built so that every expected answer can be computed here in Python:
each article holds a known subset of a few words, so a query's matches are a set
comprehension, and SQLite and PostgreSQL must both return exactly that set.
"""

import base64
import random
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from app.api.limits import MAX_QUERY_BYTES
from app.db import backend, make_engine
from app.queries import cursor as cursors
from app.settings import Settings
from tests.factories import (
    NEWS_KEYS,
    add_articles,
    cursor_secret,
    make_client,
    record,
    search_caught_up,
    written_database,
)

pytestmark = pytest.mark.anyio

WORDS = ["amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath"]
N = 90
SOURCES = (1, 2, 3)
# Code-point order differs from any locale's: capitals first, then lower case, then accents.
TITLES = ["Yak crossing", "apple orchard", "Émile report", "éclair recipe", "apple orchard"]


def words_of(article_id: int) -> list[str]:
    rng = random.Random(article_id)
    return [w for w in WORDS if rng.random() < 0.4]


def title_of(article_id: int) -> str:
    return TITLES[article_id % len(TITLES)] + f" {article_id:03d}"


def content_of(article_id: int) -> str:
    # "lorem" pads the body; the phrase words appear in either order, never as a phrase twice.
    order = "quick brown fox" if article_id % 4 == 0 else "brown quick fox"
    return " ".join([*words_of(article_id), "lorem ipsum", order, "lorem"] * 2)


def source_of(article_id: int) -> int:
    return SOURCES[article_id % 3]


ALL = list(range(1, N + 1))


def having(word: str) -> set[int]:
    return {a for a in ALL if word in words_of(a)}


def corpus() -> list[dict[str, Any]]:
    records = [
        record(a, source_id=source_of(a), title=title_of(a), content=content_of(a)) for a in ALL
    ]
    # Ranking: 1001 has the word in its title and all over its body; 1002 mentions it once.
    records.append(record(1001, source_id=1, title="Zebra zebra", content="zebra " * 30))
    records.append(record(1002, source_id=1, title="Savanna", content="a zebra " + "grass " * 30))
    records.append(
        record(1003, source_id=2, title="Markup", content='<b>xylophone</b> & "quoted" text')
    )
    # Prefixes: `viing` stems to `vi`, a word of its own that `viing*` must not find or mark.
    records.append(record(1004, source_id=3, title="Tundra", content="Viingnoca beside vi."))
    records.append(record(1005, source_id=3, title="Steppe", content="Only vi lives here."))
    records.append(record(1006, source_id=3, title="Towns", content="The cities of the plain."))
    return records


EXTRA_SOURCES = {1001: 1, 1002: 1, 1003: 2, 1004: 3, 1005: 3, 1006: 3}
EXTRA = list(EXTRA_SOURCES)
EVERY = sorted([*ALL, *EXTRA], reverse=True)


@pytest.fixture(scope="module")
def query_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The corpus above, written once per module and backend through the real writer."""
    yield from written_database(template_url, tmp_path_factory.mktemp("query"), corpus())


@pytest.fixture
async def api(query_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(query_url) as client:
        yield client


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    response = await client.get(url, params=params or None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def walk(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every item from the first page on, following `next`."""
    page = await get(client, "/v1/articles", **params)
    items = list(page["items"])
    while page["next"]:
        page = await get(client, page["next"])
        items += page["items"]
        assert len(items) <= 2 * len(EVERY), ids(items)
    return items


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["article_id"] for item in items]


# -- Search: one language, the same matches on both backends ---------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("amber", having("amber")),
        ("AMBER", having("amber")),
        ("amber birch", having("amber") & having("birch")),
        ("amber OR birch", having("amber") | having("birch")),
        ("amber OR birch cedar", (having("amber") | having("birch")) & having("cedar")),
        ("amber -birch", having("amber") - having("birch")),
        ('amber -"quick brown"', {a for a in having("amber") if a % 4 != 0}),
        ('"quick brown fox"', {a for a in ALL if a % 4 == 0}),
        ('"brown quick"', {a for a in ALL if a % 4 != 0}),
        ('"quick brown', {a for a in ALL if a % 4 == 0}),  # an open quote runs to the end
        ("fjord:grove", {a for a in ALL if "fjord grove" in content_of(a)}),  # a phrase
        ("zebra", {1001, 1002}),
        ("xylophone", {1003}),
        ("nothingmatches", set()),
        # AND is a space, NOT is a minus, parentheses group; tabs and newlines are spaces.
        ("amber AND birch", having("amber") & having("birch")),
        ("amber NOT birch", having("amber") - having("birch")),
        ("(amber OR birch) cedar", (having("amber") | having("birch")) & having("cedar")),
        ("cedar (amber OR birch)", (having("amber") | having("birch")) & having("cedar")),
        ("(amber birch) OR cedar", (having("amber") & having("birch")) | having("cedar")),
        ("cedar NOT (amber OR birch)", having("cedar") - having("amber") - having("birch")),
        ("cedar -(amber birch)", having("cedar") - (having("amber") & having("birch"))),
        ("amber\tbirch\ncedar", having("amber") & having("birch") & having("cedar")),
        # A prefix: words that begin with it, and a whole word's own forms.
        ("amb*", having("amber")),
        ("viing*", {1004}),
        ("cities*", {1006}),
        ("city*", {1006}),
    ],
)
async def test_search_finds_exactly_the_matching_articles(
    api: httpx.AsyncClient, q: str, expected: set[int]
) -> None:
    items = await walk(api, q=q, limit=13)
    assert sorted(ids(items)) == sorted(expected)
    for item in items:
        assert isinstance(item["score"], float)
        assert "<mark>" in item["snippet"]


async def test_only_exclusions_means_every_article_not_matching(api: httpx.AsyncClient) -> None:
    items = await walk(api, q="-amber -birch", limit=50)
    assert ids(items) == [a for a in EVERY if a not in having("amber") | having("birch")]
    assert all(item["score"] == 0.0 for item in items)
    assert all("<mark>" not in item["snippet"] for item in items)


async def test_title_and_frequent_mentions_outrank_a_single_mention(
    api: httpx.AsyncClient,
) -> None:
    page = await get(api, "/v1/articles", q="zebra")
    assert ids(page["items"]) == [1001, 1002]
    assert page["items"][0]["score"] > page["items"][1]["score"] > 0


@pytest.mark.parametrize(
    ("q", "marked"),
    [
        ("zebr*", {"zebra"}),
        ("viing*", {"Viingnoca"}),  # the whole word as written; not the `vi` `viing` stems to
        ("cities*", {"cities"}),
        ("amber NOT birch", {"amber"}),  # neither `not` nor the excluded word
        ("amber AND cedar", {"amber", "cedar"}),
    ],
)
async def test_snippets_mark_the_words_matched_and_nothing_else(
    api: httpx.AsyncClient, q: str, marked: set[str]
) -> None:
    items = await walk(api, q=q, limit=50)
    assert items
    seen: set[str] = set()
    for item in items:
        found = set(re.findall(r"<mark>(.*?)</mark>", item["snippet"]))
        assert found, item
        seen |= found
    assert seen == marked


async def test_snippet_marks_matches_and_escapes_the_rest(api: httpx.AsyncClient) -> None:
    item = (await get(api, "/v1/articles", q="xylophone"))["items"][0]
    snippet = item["snippet"]
    assert "<mark>xylophone</mark>" in snippet
    assert "<b>" not in snippet.replace("<mark>", "").replace("</mark>", "")
    assert "&amp;" in snippet


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '"""',
        "*",
        "amber*",
        ":",
        "title:amber",
        "(",
        "amber)",
        "NEAR(amber birch)",
        "AND",
        "NOT amber",
        "amber AND OR NOT",
        "'; DROP TABLE article; --",
        "SELECT * FROM article_fts",
        "🙂 emoji 🙂",
        "!@#$%^&*()_+{}|:<>?~`-=[]\\;',./" * 16,
        "a" * 1000,
        " ".join(["amber"] * 300),
        " ".join(f"w{i}" for i in range(300)),
        " OR ".join(f"w{i}" for i in range(200)),
        "amber " + " ".join(f"-w{i}" for i in range(300)),
        " ".join(f'"w{i} x{i}"' for i in range(100)),
        "-",
        "--amber",
        "^amber",
        "amber & birch | !cedar <-> dune",
    ],
)
async def test_anything_a_person_types_is_safe(api: httpx.AsyncClient, q: str) -> None:
    page = await get(api, "/v1/articles", q=q[:1000], count="exact", facet="source_id")
    assert isinstance(page["items"], list)
    assert page["total"] == sum(f["count"] for f in page["facets"]["source_id"])


async def test_query_longer_than_the_maximum_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/articles", params={"q": "a" * 1001})
    assert response.status_code == 422
    assert [e["name"] for e in response.json()["errors"]] == ["q"]


@pytest.mark.parametrize("q", ["", "   "])
async def test_blank_query_is_a_plain_list(api: httpx.AsyncClient, q: str) -> None:
    page = await get(api, "/v1/articles", q=q, limit=5)
    assert ids(page["items"]) == EVERY[:5]
    assert "score" not in page["items"][0]


def typable(q: str) -> bool:
    """No control characters but tabs and line breaks, and short enough once percent-encoded
    for the query-string cap of app/api/limits.py (a separate, HTTP-level limit that 1,000
    characters always fit)."""
    return not any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in q) and (
        len(quote(q, safe="")) + len("q=&count=exact&limit=3") <= MAX_QUERY_BYTES
    )


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(q=st.text(max_size=1000))
async def test_no_text_makes_the_search_fail(api: httpx.AsyncClient, q: str) -> None:
    response = await api.get("/v1/articles", params={"q": q, "count": "exact", "limit": 3})
    assert response.status_code < 500, (q, response.text)
    if typable(q):
        assert response.status_code == 200, (q, response.text)


async def test_the_longest_query_in_any_script_is_served(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/articles", params={"q": "🙂" * 1000})
    assert response.status_code == 200


# -- Paging a search -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_walking_a_search_visits_each_hit_once_in_rank_order(
    api: httpx.AsyncClient, limit: int
) -> None:
    q = "amber OR cedar"
    items = await walk(api, q=q, limit=limit)
    assert sorted(ids(items)) == sorted(having("amber") | having("cedar"))
    keys = [(-item["score"], -item["article_id"]) for item in items]
    assert keys == sorted(keys)
    # And back again from the last page.
    last = await get(api, "/v1/articles", q=q, limit=limit)
    while last["next"]:
        last = await get(api, last["next"])
    back = list(last["items"])
    page = last
    while page["prev"]:
        page = await get(api, page["prev"])
        back = page["items"] + back
    assert ids(back) == ids(items)


async def test_search_combines_with_every_filter(api: httpx.AsyncClient) -> None:
    wanted = {a for a in having("birch") if source_of(a) in (1, 3) and 10 <= a <= 70}
    items = await walk(
        api, q="birch", source_id=[1, 3], id_min=10, id_max=70, limit=4, count="exact"
    )
    assert sorted(ids(items)) == sorted(wanted)
    page = await get(
        api, "/v1/articles", q="birch", ids="10,11,12,13,14,15,16", count="exact", facet="source_id"
    )
    in_ids = {a for a in having("birch") if 10 <= a <= 16}
    assert sorted(ids(page["items"])) == sorted(in_ids)
    assert page["total"] == len(in_ids)


@pytest.mark.parametrize("sort", ["-article_id", "article_id", "title", "-title"])
async def test_search_in_another_order(api: httpx.AsyncClient, sort: str) -> None:
    items = await walk(api, q="dune", sort=sort, limit=6)
    if sort.endswith("title"):
        expected = sorted(having("dune"), key=lambda a: (title_of(a), a))
    else:
        expected = sorted(having("dune"))
    if sort.startswith("-"):
        expected.reverse()
    assert ids(items) == expected
    assert all("score" in item and "snippet" in item for item in items)


# -- Filters and sorts without a search ------------------------------------------------------


async def test_id_range_is_inclusive_at_both_ends(api: httpx.AsyncClient) -> None:
    assert ids(await walk(api, id_min=10, id_max=20)) == list(range(20, 9, -1))
    assert ids(await walk(api, id_min=88)) == [*reversed(EXTRA), 90, 89, 88]
    assert ids(await walk(api, id_max=3)) == [3, 2, 1]
    assert ids(await walk(api, id_min=5, id_max=4)) == []


async def test_ids_fetches_several_known_articles(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", ids="5,3,5,999999,1001")
    assert ids(page["items"]) == [1001, 5, 3]
    page = await get(api, "/v1/articles", ids="5,3,1001", sort="article_id")
    assert ids(page["items"]) == [3, 5, 1001]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"ids": ",".join(str(i) for i in range(1, 102))}, "ids"),
        ({"ids": "1,x"}, "ids"),
        ({"ids": "0"}, "ids"),
        ({"sort": "score"}, "sort"),
        ({"count": "some"}, "count"),
        ({"content": "half"}, "content"),
        ({"facet": "title"}, "facet"),
        ({"fields": "article_id,body"}, "fields"),
        ({"fields": ","}, "fields"),
        ({"id_min": "0"}, "id_min"),
        ({"id_max": "x"}, "id_max"),
    ],
)
async def test_invalid_values_are_422_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    response = await api.get("/v1/articles", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["name"] for e in response.json()["errors"]] == [name]


async def test_title_order_is_code_point_order_with_ties_by_id(api: httpx.AsyncClient) -> None:
    items = await walk(api, sort="title", limit=8, id_max=N)
    expected = sorted(ALL, key=lambda a: (title_of(a), a))
    assert ids(items) == expected
    assert items[0]["title"].startswith("Yak")  # capitals sort before lower case
    descending = await walk(api, sort="-title", limit=8, id_max=N)
    assert ids(descending) == list(reversed(expected))


async def test_hundred_ids_are_allowed(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", ids=",".join(str(i) for i in range(1, 101)), limit=100)
    assert ids(page["items"]) == list(range(N, 0, -1))


async def test_cursor_from_another_sort_or_search_is_400(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", q="amber", limit=2)
    token = page["next"].split("cursor=")[1]
    for params in ({"q": "birch"}, {"q": "amber", "sort": "-article_id"}, {}):
        response = await api.get("/v1/articles", params={**params, "limit": 2, "cursor": token})
        assert response.status_code == 400
    same = await api.get("/v1/articles", params={"q": "Amber ", "limit": 2, "cursor": token})
    assert same.status_code == 200


# -- Fields and content ----------------------------------------------------------------------


async def test_fields_returns_only_those_keys(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", fields="article_id,title", limit=3)
    assert [set(item) for item in page["items"]] == [{"article_id", "title"}] * 3
    hits = await get(api, "/v1/articles", q="amber", fields="article_id,score", limit=3)
    assert all(set(item) == {"article_id", "score"} for item in hits["items"])
    assert hits["next"] is not None


async def test_content_picks_how_much_body_items_carry(api: httpx.AsyncClient) -> None:
    full = (await get(api, "/v1/articles", content="full", ids="4"))["items"][0]
    assert full["content"] == content_of(4)
    assert "excerpt" not in full
    assert full["word_count"] == len(content_of(4).split())
    none = (await get(api, "/v1/articles", content="none", ids="4"))["items"][0]
    assert set(none) == {"article_id", "source_id", "title", "word_count"} | NEWS_KEYS
    default = (await get(api, "/v1/articles", ids="4"))["items"][0]
    assert content_of(4).startswith(default["excerpt"].rstrip("…"))


# -- Counts and facets -----------------------------------------------------------------------


async def test_counts_are_absent_unless_asked(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", q="amber")
    assert (page["total"], page["total_is_exact"]) == (None, None)
    assert "facets" not in page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, set(EVERY)),
        ({"q": "ember"}, having("ember")),
        ({"q": "ember", "source_id": 2}, {a for a in having("ember") if source_of(a) == 2}),
        ({"id_min": 30, "id_max": 39}, set(range(30, 40))),
        ({"q": "-ember"}, set(EVERY) - having("ember")),
    ],
)
async def test_exact_total_and_facets_sum_to_it(
    api: httpx.AsyncClient, params: dict[str, Any], expected: set[int]
) -> None:
    page = await get(api, "/v1/articles", count="exact", facet="source_id", **params)
    assert (page["total"], page["total_is_exact"]) == (len(expected), True)
    facets = page["facets"]["source_id"]
    assert sum(f["count"] for f in facets) == page["total"]
    by_source = {1: 0, 2: 0, 3: 0}
    for a in expected:
        by_source[source_of(a) if a <= N else EXTRA_SOURCES[a]] += 1
    assert {f["value"]: f["count"] for f in facets} == {s: c for s, c in by_source.items() if c}
    counts = [f["count"] for f in facets]
    assert counts == sorted(counts, reverse=True)
    again = await get(api, "/v1/articles", count="exact", facet="source_id", **params)
    assert again["total"] == page["total"]  # served from the cache, still right


async def test_estimated_total_says_whether_it_is_exact(
    api: httpx.AsyncClient, query_url: str
) -> None:
    page = await get(api, "/v1/articles", count="estimated")
    if backend(query_url) == "sqlite":
        assert (page["total"], page["total_is_exact"]) == (len(EVERY), True)
    else:
        assert page["total_is_exact"] is False
        assert abs(page["total"] - len(EVERY)) <= 0.1 * len(EVERY)
    searched = await get(api, "/v1/articles", count="estimated", q="amber")
    # The search index counts exactly, as cheaply as it could estimate.
    assert (searched["total"], searched["total_is_exact"]) == (len(having("amber")), True)


# -- The source's own list takes the same parameters -----------------------------------------


async def test_source_articles_accept_the_same_parameters(api: httpx.AsyncClient) -> None:
    page = await get(
        api, "/v1/sources/2/articles", q="grove", count="exact", facet="source_id", limit=100
    )
    expected = {a for a in having("grove") if source_of(a) == 2}
    assert sorted(ids(page["items"])) == sorted(expected)
    assert page["total"] == len(expected)
    assert page["facets"]["source_id"] == (
        [{"value": 2, "count": len(expected)}] if expected else []
    )
    response = await api.get("/v1/sources/2/articles", params={"sort": "nope"})
    assert response.status_code == 422


# -- In step with ingestion ------------------------------------------------------------------


async def test_search_and_counts_follow_a_reingest(
    client: httpx.AsyncClient, database_url: str
) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        add_articles(engine, [record(1, title="First", content="walrus walrus")])
        await search_caught_up(client, database_url)
        first = await get(client, "/v1/articles", q="walrus", count="exact")
        assert (ids(first["items"]), first["total"]) == ([1], 1)
        add_articles(
            engine,
            [
                record(1, title="First", content="narwhal only"),
                record(2, title="Second", content="walrus"),
            ],
        )
    finally:
        engine.dispose()
    await search_caught_up(client, database_url)
    again = await get(client, "/v1/articles", q="walrus", count="exact")
    assert (ids(again["items"]), again["total"]) == ([2], 1)
    narwhal = await get(client, "/v1/articles", q="narwhal")
    assert ids(narwhal["items"]) == [1]


@pytest.mark.parametrize(
    "key", [[1e308 * 10, 5], [0.5, 2**63], [0.5, -1], ["x", 5], [0.5, 5.5], [None, 5]]
)
async def test_a_signed_cursor_with_an_impossible_key_is_400(
    api: httpx.AsyncClient, query_url: str, key: list[object]
) -> None:
    """Should the secret leak, a forged, correctly signed key must still be refused."""
    page = await get(api, "/v1/articles", q="amber", limit=2)
    token = page["next"].split("cursor=")[1]
    _, direction, fp = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[12:])
    forged = cursors.encode(
        cursors.Cursor(tuple(key), "after" if direction == "a" else "before", fp),  # type: ignore[arg-type]
        cursor_secret(query_url),
    )
    response = await api.get("/v1/articles", params={"q": "amber", "limit": 2, "cursor": forged})
    assert response.status_code == 400, response.text


async def test_a_write_shows_through_a_kept_search(
    client: httpx.AsyncClient, engine: Engine, database_url: str
) -> None:
    """Search replies are kept per data and index revision: every write shows in the next
    reply once the index has it."""
    params = {"q": "walrus", "count": "exact", "facet": "source_id"}
    add_articles(engine, [record(1, source_id=1, title="Walrus one", content="a walrus")])
    await search_caught_up(client, database_url)
    first = await client.get("/v1/articles", params=params)
    assert first.json()["total"] == 1
    assert (await client.get("/v1/articles", params=params)).content == first.content
    add_articles(engine, [record(2, source_id=2, title="Two", content="walrus walrus")])
    await search_caught_up(client, database_url)
    second = await get(client, "/v1/articles", **params)
    assert (second["total"], sorted(ids(second["items"]))) == (2, [1, 2])
    assert second["facets"]["source_id"] == [{"value": 1, "count": 1}, {"value": 2, "count": 1}]
    add_articles(engine, [record(1, source_id=1, title="Seal", content="a seal")])  # an update
    await search_caught_up(client, database_url)
    third = await get(client, "/v1/articles", **params)
    assert (third["total"], ids(third["items"])) == (1, [2])
