"""One very large article (ingested with the size limit raised) must not stall the server.

A live uvicorn serves a corpus that holds a 50 MB article, and four clients search for a
word it holds over and over, each search new (so no kept reply answers it): meanwhile
`/healthz` must answer under 100 ms at the 99th percentile, as a liveness probe expects.
The event loop must be the real one, so this runs against a live server, on both backends.
"""

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from app.db import make_engine
from app.ingest.pipeline import ingest
from app.settings import Settings
from tests.databases import clone, drop
from tests.factories import corpus_records, large_record
from tests.live import LiveServer, latencies_ms, percentile, serve, wait_for_search

LARGE_ID = 4242
LARGE_MB = 50
SEARCHERS = 4
ROUND_S = 4.0
HEALTHZ_P99_MS = 100.0
# A shared, noisy machine may stall any process now and then: a round may be repeated,
# and one round under the bound passes. Before bounded snippets, every round failed:
# each search stalled the event loop for about two seconds.
ROUNDS = 3


@pytest.fixture(scope="module")
def large_url(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The small corpus plus one 50 MB article, loaded with the content limit raised."""
    url = clone(template_url, tmp_path_factory.mktemp("large"))
    path = tmp_path_factory.mktemp("large-data") / "corpus.jsonl"
    records = [*corpus_records(), large_record(LARGE_ID, LARGE_MB)]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    engine = make_engine(Settings(database_url=url), pooled=False)
    rejects: list[object] = []
    ingest([path], engine, on_reject=rejects.append, max_content_bytes=64 << 20)
    engine.dispose()
    assert rejects == []
    yield url
    drop(url)


@pytest.fixture(scope="module")
def server(large_url: str) -> Iterator[LiveServer]:
    with serve(large_url) as live:
        wait_for_search(live, timeout_s=120)
        yield live


Load = Callable[[httpx.Client, int], None]


def _search(client: httpx.Client, n: int) -> None:
    """A search that hits the large article, new each time: its exclusion is of a word no
    article holds."""
    response = client.get("/v1/articles", params={"q": f"palmyra -zq{n}", "limit": 5})
    response.raise_for_status()


def _read_whole(client: httpx.Client, n: int) -> None:
    """The large article whole: its detail, or a list page that carries its content."""
    if n % 2:
        client.get(f"/v1/articles/{LARGE_ID}").raise_for_status()
    else:
        params = {"ids": str(LARGE_ID), "content": "full"}
        client.get("/v1/articles", params=params).raise_for_status()


def _load_until(server: LiveServer, load: Load, until: threading.Event, n: Iterator[int]) -> int:
    done = 0
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        while not until.is_set():
            load(client, next(n))
            done += 1
    return done


def _healthz_p99_under(server: LiveServer, load: Load, clients: int) -> list[float]:
    """/healthz's p99 in each round of `clients` running `load` over and over, until one
    round is under the bound."""
    numbers = itertools.count()
    measured: list[float] = []
    for _ in range(ROUNDS):
        until = threading.Event()
        with ThreadPoolExecutor(clients + 1) as pool:
            loads = [pool.submit(_load_until, server, load, until, numbers) for _ in range(clients)]
            probes = pool.submit(latencies_ms, f"{server.url}/healthz", until)
            until.wait(ROUND_S)
            until.set()
            assert all(done.result() > 0 for done in loads)
            measured.append(percentile(probes.result(), 0.99))
        if measured[-1] < HEALTHZ_P99_MS:
            break
    return measured


def test_a_search_reads_a_bounded_part_of_a_large_article(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/v1/articles", params={"q": "palmyra"}, timeout=60).json()
    large = next(item for item in page["items"] if item["article_id"] == LARGE_ID)
    assert "<mark>Palmyra</mark>" in large["snippet"]
    assert len(large["snippet"]) < 1000
    similar = httpx.get(f"{server.url}/v1/articles/{LARGE_ID}/similar", timeout=60)
    assert similar.status_code == 200


def test_searches_that_hit_a_large_article_leave_healthz_fast(server: LiveServer) -> None:
    measured = _healthz_p99_under(server, _search, SEARCHERS)
    assert measured[-1] < HEALTHZ_P99_MS, f"/healthz p99 per round: {measured} ms"


def test_reading_a_large_article_whole_leaves_healthz_fast(server: LiveServer) -> None:
    """Its detail is read, serialised and compressed off the event loop, and sent in chunks."""
    article = httpx.get(f"{server.url}/v1/articles/{LARGE_ID}", timeout=60).json()
    assert article["content"] == large_record(LARGE_ID, LARGE_MB)["content"]
    measured = _healthz_p99_under(server, _read_whole, 2)
    assert measured[-1] < HEALTHZ_P99_MS, f"/healthz p99 per round: {measured} ms"
