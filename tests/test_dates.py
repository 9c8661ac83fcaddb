"""The time axis on both backends, with and without a search: date filters and their edges,
sorts by date across page boundaries (ties, undated articles), date facets, and the author
and url filters. Every expectation is computed here from the records themselves."""

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from app.db import make_engine
from app.queries import counts
from app.queries.cache import RevisionCache
from app.queries.counts import CountMode, Facet
from app.search.filters import ArticleFilter
from app.settings import Settings
from tests.factories import make_client, record, written_database

pytestmark = pytest.mark.anyio

BASE = datetime(2016, 3, 1, 9, 30, tzinfo=UTC)
AUTHORS = ("Jane Doe", "Doe, John", "Zoë Ng")


def _published(n: int) -> datetime | None:
    """Ids 1-45 are dated, in runs of three on one instant (ties across page boundaries);
    ids 46-55 are undated; two sit on the edges of March."""
    if n == 44:
        return datetime(2016, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
    if n == 45:
        return datetime(2016, 4, 1, tzinfo=UTC)
    if n > 45:
        return None
    return BASE + timedelta(days=(n // 3) * 2, hours=n % 2)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def corpus() -> list[dict[str, Any]]:
    records = []
    for n in range(1, 56):
        published = _published(n)
        news: dict[str, Any] = {"url": f"https://news.example/{n}", "author": AUTHORS[n % 3]}
        if published is not None:
            news["published_at"] = _rfc3339(published)
        words = "common palmyra" if n % 4 == 0 else "common"
        records.append(record(n, source_id=2 + n % 2, content=f"{words} body {n}", **news))
    return records


RECORDS = {r["article_id"]: r for r in corpus()}
DATES = {n: _published(n) for n in RECORDS}


def expected(ids: list[int], *, descending: bool) -> list[int]:
    """`ids` in date order (ties by id in the same direction), undated last by id."""
    dated = [i for i in ids if DATES[i] is not None]
    undated = [i for i in ids if DATES[i] is None]
    dated.sort(key=lambda i: (DATES[i], i), reverse=descending)
    return dated + sorted(undated, reverse=descending)


@pytest.fixture(scope="module")
def dates_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The corpus above, written once per module and backend through the real writer."""
    yield from written_database(template_url, tmp_path_factory.mktemp("dates"), corpus())


@pytest.fixture
async def api(dates_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(dates_url) as client:
        yield client


async def get(client: httpx.AsyncClient, path: str, /, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params or None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[int]:
    return [item["article_id"] for item in page["items"]]


async def walk(client: httpx.AsyncClient, **params: Any) -> list[list[int]]:
    """Every page from the first, by `next`; then back from the last by `prev`, which must
    give the same pages."""
    pages = [await get(client, "/v1/articles", **params)]
    while pages[-1]["next"]:
        pages.append(await get(client, pages[-1]["next"]))
    forward = [ids(p) for p in pages]
    back = [forward[-1]]
    page = pages[-1]
    while page["prev"]:
        page = await get(client, page["prev"])
        back.append(ids(page))
    assert back[::-1] == forward
    return forward


SEARCHES = [None, "common", "palmyra"]


def matching(q: str | None) -> list[int]:
    return [n for n, r in RECORDS.items() if q is None or q in r["content"]]


@pytest.mark.parametrize("q", SEARCHES)
@pytest.mark.parametrize("sort", ["-published_at", "published_at"])
async def test_date_sorts_walk_every_article_once_undated_last(
    api: httpx.AsyncClient, q: str | None, sort: str
) -> None:
    params: dict[str, Any] = {"sort": sort, "limit": 4, "fields": "article_id,published_at"}
    if q is not None:
        params["q"] = q
    pages = await walk(api, **params)
    walked = [i for page in pages for i in page]
    assert walked == expected(matching(q), descending=sort.startswith("-"))
    assert all(len(page) == 4 for page in pages[:-1])


async def test_items_carry_the_dates_as_rfc_3339_in_utc(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", sort="-published_at", limit=100)
    for item in page["items"]:
        published = DATES[item["article_id"]]
        assert item["published_at"] == (None if published is None else _rfc3339(published))
        assert item["url"] == f"https://news.example/{item['article_id']}"
        assert item["author"] == AUTHORS[item["article_id"] % 3]
    edge = await get(api, "/v1/articles", ids="44", fields="published_at")
    assert edge["items"] == [{"published_at": "2016-03-31T23:59:59.999999Z"}]


@pytest.mark.parametrize("q", SEARCHES)
@pytest.mark.parametrize(
    ("start", "end", "first", "past"),
    [
        # A date alone as published_to includes that whole day; the next midnight is out.
        (
            "2016-03-31",
            "2016-03-31",
            datetime(2016, 3, 31, tzinfo=UTC),
            datetime(2016, 4, 1, tzinfo=UTC),
        ),
        # A month is the whole month, edges included.
        ("2016-03", "2016-03", datetime(2016, 3, 1, tzinfo=UTC), datetime(2016, 4, 1, tzinfo=UTC)),
        # Date-times are inclusive instants; an offset moves them to UTC.
        (
            "2016-03-05T09:30:00Z",
            "2016-03-09T12:30:00+02:00",
            datetime(2016, 3, 5, 9, 30, tzinfo=UTC),
            datetime(2016, 3, 9, 10, 30, 0, 1, tzinfo=UTC),
        ),
        # Without an offset, UTC.
        (
            "2016-04-01T00:00:00",
            None,
            datetime(2016, 4, 1, tzinfo=UTC),
            None,
        ),
        (None, "2016-03-01", None, datetime(2016, 3, 2, tzinfo=UTC)),
    ],
)
async def test_date_bounds_are_inclusive_and_undated_never_match(
    api: httpx.AsyncClient,
    q: str | None,
    start: str | None,
    end: str | None,
    first: datetime | None,
    past: datetime | None,
) -> None:
    params: dict[str, Any] = {"limit": 100, "count": "exact", "fields": "article_id"}
    for name, value in (("published_from", start), ("published_to", end), ("q", q)):
        if value is not None:
            params[name] = value
    page = await get(api, "/v1/articles", **params)
    wanted = {
        n
        for n in matching(q)
        if (d := DATES[n]) is not None
        and (first is None or d >= first)
        and (past is None or d < past)
    }
    assert set(ids(page)) == wanted
    assert page["total"] == len(wanted)
    assert wanted or q == "palmyra", "each case selects something"


async def test_the_edges_of_a_day_fall_on_the_right_side(api: httpx.AsyncClient) -> None:
    march = await get(api, "/v1/articles", published_to="2016-03-31", ids="44,45")
    assert ids(march) == [44]  # 23:59:59.999999 is in, the next midnight is out
    april = await get(api, "/v1/articles", published_from="2016-04-01", ids="44,45")
    assert ids(april) == [45]
    instant = await get(
        api, "/v1/articles", published_to="2016-03-31T23:59:59.999998Z", ids="44,45"
    )
    assert ids(instant) == []


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"published_from": "2016-04-01", "published_to": "2016-03-31"}, "published_from"),
        (
            {"published_from": "2016-03-02T00:00:00Z", "published_to": "2016-03-01T23:00Z"},
            "published_from",
        ),
        ({"published_from": "last tuesday"}, "published_from"),
        ({"published_to": "2016-02-30"}, "published_to"),
        ({"published_to": "2016-13"}, "published_to"),
        ({"published_from": "x" * 65}, "published_from"),
        ({"facet": "published_at:week"}, "facet"),
        ({"sort": "published"}, "sort"),
        ({"author": ""}, "author"),
    ],
)
async def test_bad_date_parameters_are_422_problems_naming_them(
    api: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    for q in (None, "common"):
        response = await api.get("/v1/articles", params=params | ({"q": q} if q else {}))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["name"] for e in response.json()["errors"]] == [name]


@pytest.mark.parametrize("q", SEARCHES)
@pytest.mark.parametrize("unit", ["year", "month", "day"])
async def test_date_facets_count_per_bucket_in_time_order_and_sum_to_the_total(
    api: httpx.AsyncClient, q: str | None, unit: str
) -> None:
    params: dict[str, Any] = {"facet": f"published_at:{unit}", "count": "exact", "limit": 1}
    if q is not None:
        params["q"] = q
    page = await get(api, "/v1/articles", **params)
    width = {"year": 4, "month": 7, "day": 10}[unit]
    counted = Counter(
        None if (d := DATES[n]) is None else d.date().isoformat()[:width] for n in matching(q)
    )
    dated = sorted((label, n) for label, n in counted.items() if label is not None)
    wanted = [{"value": label, "count": n} for label, n in dated]
    if counted[None]:
        wanted.append({"value": None, "count": counted[None]})
    assert page["facets"] == {f"published_at:{unit}": wanted}
    assert sum(f["count"] for f in page["facets"][f"published_at:{unit}"]) == page["total"]


async def test_a_bucket_value_is_a_filter_for_its_bucket(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles", facet="published_at:month", limit=1)
    for bucket in page["facets"]["published_at:month"]:
        if bucket["value"] is None:
            continue
        narrowed = await get(
            api,
            "/v1/articles",
            published_from=bucket["value"],
            published_to=bucket["value"],
            count="exact",
            limit=1,
        )
        assert narrowed["total"] == bucket["count"]


async def test_facets_combine_with_filters_and_each_other(api: httpx.AsyncClient) -> None:
    page = await get(
        api,
        "/v1/articles",
        facet=["source_id", "published_at:year"],
        published_from="2016-03-10",
        source_id=2,
        count="exact",
        limit=1,
    )
    wanted = [
        n
        for n in RECORDS
        if RECORDS[n]["source_id"] == 2
        and (d := DATES[n])
        and d >= datetime(2016, 3, 10, tzinfo=UTC)
    ]
    assert page["total"] == len(wanted)
    assert page["facets"]["source_id"] == [{"value": 2, "count": len(wanted)}]
    assert page["facets"]["published_at:year"] == [{"value": "2016", "count": len(wanted)}]


@pytest.mark.parametrize("q", SEARCHES)
async def test_author_is_exact_and_repeatable_and_url_finds_one_story(
    api: httpx.AsyncClient, q: str | None
) -> None:
    search = {"q": q} if q else {}
    one = await get(api, "/v1/articles", author="Doe, John", limit=100, **search)
    assert set(ids(one)) == {n for n in matching(q) if AUTHORS[n % 3] == "Doe, John"}
    two = await get(api, "/v1/articles", author=["Doe, John", "Zoë Ng"], limit=100, **search)
    assert set(ids(two)) == {n for n in matching(q) if n % 3 != 0}
    assert ids(await get(api, "/v1/articles", author="doe, john", **search)) == []
    story = await get(api, "/v1/articles", url="https://news.example/8", **search)
    assert ids(story) == ([8] if 8 in matching(q) else [])
    assert ids(await get(api, "/v1/articles", url="https://news.example/", **search)) == []


async def test_a_search_and_a_list_agree_on_every_date_filter_and_sort(
    api: httpx.AsyncClient,
) -> None:
    for params in (
        {"sort": "-published_at", "published_from": "2016-03-20", "source_id": 3},
        {"sort": "published_at", "published_to": "2016-03-15", "author": "Jane Doe"},
        {"sort": "-article_id", "published_from": "2016-03", "published_to": "2016-03"},
    ):
        listed = await walk(api, limit=3, **params)
        searched = await walk(api, limit=3, q="common", **params)
        assert listed == searched


async def test_detail_and_changes_carry_the_news_fields(api: httpx.AsyncClient) -> None:
    article = await get(api, "/v1/articles/44")
    assert article["published_at"] == "2016-03-31T23:59:59.999999Z"
    assert (article["url"], article["author"]) == ("https://news.example/44", AUTHORS[44 % 3])
    assert article["extra"] is None  # the names used for the fields leave extra
    undated = await get(api, "/v1/articles/50")
    assert undated["published_at"] is None
    changes = await get(api, "/v1/changes", limit=1000)
    by_id = {c["article_id"]: c for c in changes["items"]}
    assert by_id[44]["published_at"] == "2016-03-31T23:59:59.999999Z"
    assert by_id[50]["published_at"] is None
    assert by_id[7]["author"] == AUTHORS[7 % 3]


async def test_similar_articles_carry_the_news_fields(api: httpx.AsyncClient) -> None:
    page = await get(api, "/v1/articles/8/similar", limit=3)
    assert page["items"]
    for item in page["items"]:
        assert item["url"] == f"https://news.example/{item['article_id']}"
        assert "published_at" in item


async def test_a_sources_articles_sort_and_filter_by_date(api: httpx.AsyncClient) -> None:
    page = await get(
        api, "/v1/sources/3/articles", sort="-published_at", published_from="2016-03-15", limit=100
    )
    listed = ids(page)
    wanted = [
        n
        for n in expected(list(RECORDS), descending=True)
        if RECORDS[n]["source_id"] == 3
        and (d := DATES[n]) is not None
        and d >= datetime(2016, 3, 15, tzinfo=UTC)
    ]
    assert listed == wanted


async def test_the_database_and_the_index_count_lists_alike(
    api: httpx.AsyncClient, dates_url: str
) -> None:
    """A list's exact total and facets come from the index when it holds every write, else
    from the database: both answer the same."""
    view = api._transport.app.state.follower.index.view()  # type: ignore[attr-defined]
    engine = make_engine(Settings(database_url=dates_url), pooled=False)
    filters = [
        ArticleFilter(),
        ArticleFilter(source_ids=(3,), published_from=datetime(2016, 3, 10, tzinfo=UTC)),
        ArticleFilter(authors=("Doe, John",), published_before=datetime(2016, 4, 1, tzinfo=UTC)),
        ArticleFilter(id_min=10, id_max=50, url="https://news.example/12"),
    ]
    try:
        with Session(engine) as session:
            for flt in filters:
                by_db, by_index = (
                    (
                        counts.total(session, flt, CountMode.EXACT, RevisionCache(), seen),
                        counts.facets(session, flt, list(Facet), RevisionCache(), seen),
                    )
                    for seen in (None, view)
                )
                assert by_db == by_index, flt
    finally:
        engine.dispose()
