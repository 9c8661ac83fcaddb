"""The time axis: date sorts, date ranges and date facets over HTTP, against references
measured in the same run; and the ingest rate of a corpus with dates against one without.

    python -m bench.dates --rows 1000000 [--backend sqlite|postgresql] [--requests 200]
    python -m bench.dates --rows 1000000 --ingest [--backend ...]

The corpus and its database come from bench/list_api.py (cached under bench/out/; the
synthetic articles carry a date to the second over four years, a byline and a url). A live
server (tests.live.serve: uvicorn, one worker, access log off) answers each class's
requests one at a time, every request distinct (limits, cursors, ranges, sources, words):
lists without a search are never cached, so they are measured as they are; for the date
facet, whose answer without a search is kept per data revision, each request carries a
different `id_min` so that each is computed afresh, and the cached cost is printed beside.
The classes take turns request by request, so a burst of load from the machine's other
tenants lands on all alike. The references, in the same run: the first page of
`sort=-article_id` on the same server (for the date sorts and for a date range without a
search), and the same search on the search index in process (bench/search.py's InProcess:
parse, compile, top 20 and snippets) for a date range with a search.

With --ingest: the same synthetic records with and without their author, date and url,
each loaded by `corpus ingest` into a fresh database (the search index built in the same
run), the two alternating for --rounds rounds; the best time of each is compared.
"""

import argparse
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine

from app.search.filters import ArticleFilter
from app.search.index import SearchIndex, index_path
from app.settings import Settings
from app.synth import FIRST_DAY, SOURCES, SPAN_S
from bench.list_api import OUT, corpus_file, header, pg_database, sqlite_database
from bench.pagecache import warm_database
from bench.search import InProcess, Search, percentile
from tests.databases import pg_admin, pg_url
from tests.live import serve

CORPUS = str(Path(sys.executable).with_name("corpus"))
DEEP_ITEM = 150_000
DEEP_PAGES = 50
# Starts of the synthetic pseudo-words (app/synth.py's syllables), searched as prefixes.
WORDS = tuple(c + v for c in "bcdfghklmnprstvz" for v in "aeiou")
ENDINGS = ("", "ka", "ro", "ne", "li")


@dataclass(frozen=True, slots=True)
class DatedSearch(Search):
    """A search under a source and a date range: as a request, and as the index's filter."""

    published_from: str = ""
    published_to: str = ""

    def params(self) -> dict[str, str | int]:
        params = Search.params(self)
        return params | {"published_from": self.published_from, "published_to": self.published_to}

    def filter(self) -> ArticleFilter:
        start = datetime.fromisoformat(self.published_from).replace(tzinfo=UTC)
        end = datetime.fromisoformat(self.published_to).replace(tzinfo=UTC) + timedelta(days=1)
        return replace(Search.filter(self), published_from=start, published_before=end)


def ranges(rng: random.Random, n: int) -> Iterator[tuple[int, str, str]]:
    """`n` distinct (source, first day, last day) within the corpus's four years: a week to
    three months long."""
    seen: set[tuple[int, str, str]] = set()
    while len(seen) < n:
        start = FIRST_DAY + timedelta(days=rng.randrange(SPAN_S // 86_400 - 100))
        end = start + timedelta(days=rng.randint(7, 90))
        picked = (rng.randint(1, SOURCES), f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}")
        if picked not in seen:
            seen.add(picked)
            yield picked


def deep_cursors(client: httpx.Client, sort: str, pages: int) -> list[str]:
    """`pages` consecutive page URLs (limit 20) from item DEEP_ITEM on, reached by cursor."""
    url = f"/v1/articles?sort={sort}&limit=100&fields=article_id"
    for _ in range(DEEP_ITEM // 100):
        url = client.get(url).json()["next"]
    url = url.replace("limit=100", "limit=20").replace("&fields=article_id", "")
    found = []
    for _ in range(pages):
        found.append(url)
        url = client.get(url).json()["next"]
    return found


Request = Callable[[], float]


def http(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Request:
    def run() -> float:
        started = time.perf_counter()
        response = client.get(path, params=params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} {params}: {response.status_code} {response.text[:300]}")
        return elapsed

    return run


def in_process(reference: InProcess, search: Search) -> Request:
    def run() -> float:
        return reference(search)

    return run


def classes(
    client: httpx.Client, reference: InProcess, n: int, seed: int
) -> dict[str, list[Request]]:
    """Each class's distinct requests."""
    rng = random.Random(seed)
    limits = [11 + i % 20 for i in range(n)]
    first = [
        http(client, "/v1/articles", {"sort": sort, "limit": limit})
        for sort in ("-article_id", "-published_at")
        for limit in limits
    ]
    picked = list(ranges(rng, 3 * n))
    words = [rng.choice(WORDS) + rng.choice(ENDINGS) for _ in range(n)]
    distinct = [w + e for w in WORDS for e in ENDINGS]
    rng.shuffle(distinct)
    dated_searches = [
        DatedSearch("dated", f"{w}*", source_id=s, published_from=a, published_to=b)
        for w, (s, a, b) in zip(words, picked[2 * n :], strict=True)
    ]
    return {
        "first page, sort=-article_id (reference)": first[:n],
        "first page, sort=-published_at": first[n:],
        f"item {DEEP_ITEM:,}, sort=-published_at": [
            http(client, url) for url in (deep_cursors(client, "-published_at", n))
        ],
        f"item {DEEP_ITEM:,}, sort=-article_id": [
            http(client, url) for url in (deep_cursors(client, "-article_id", n))
        ],
        "range + source, no q": [
            http(client, "/v1/articles", {"source_id": s, "published_from": a, "published_to": b})
            for s, a, b in picked[:n]
        ],
        "range + source, no q, -published_at": [
            http(
                client,
                "/v1/articles",
                {"source_id": s, "published_from": a, "published_to": b, "sort": "-published_at"},
            )
            for s, a, b in picked[n : 2 * n]
        ],
        "range + source + q": [http(client, "/v1/articles", s.params()) for s in dated_searches],
        "range + source + q, tantivy in process (reference)": [
            in_process(reference, s) for s in dated_searches
        ],
        "facet=published_at:month, whole corpus, uncached": [
            http(
                client, "/v1/articles", {"facet": "published_at:month", "id_min": 1 + i, "limit": 1}
            )
            for i in range(n)
        ],
        "facet=published_at:month, whole corpus, cached": [
            http(client, "/v1/articles", {"facet": "published_at:month", "limit": 1})
        ]
        * n,
        "facet=published_at:month + q": [
            http(client, "/v1/articles", {"facet": "published_at:month", "q": f"{w}*", "limit": 1})
            for w in distinct[:n]
        ],
    }


def measure(requests: dict[str, list[Request]]) -> dict[str, list[float]]:
    """Every request once, the classes taking turns."""
    times: dict[str, list[float]] = {name: [] for name in requests}
    longest = max(len(r) for r in requests.values())
    for i in range(longest):
        for name, runs in requests.items():
            if i < len(runs):
                times[name].append(runs[i]())
    return times


def report(times: dict[str, list[float]]) -> None:
    def p(name: str, share: float) -> float:
        return percentile(times[name], share)

    print()
    print(f"{'class':<52} {'n':>4} {'p50':>8} {'p95':>8} {'max':>8}  target")
    ref_first = "first page, sort=-article_id (reference)"
    in_process = "range + source + q, tantivy in process (reference)"
    targets = {
        "first page, sort=-published_at": (
            "p50 <= 1.2x reference p50",
            1.2 * p(ref_first, 0.5),
            0.5,
        ),
        f"item {DEEP_ITEM:,}, sort=-published_at": (
            "p50 <= 1.2x reference p50",
            1.2 * p(ref_first, 0.5),
            0.5,
        ),
        "range + source, no q": ("p95 <= 2x ref p95 + 3 ms", 2 * p(ref_first, 0.95) + 3, 0.95),
        "range + source, no q, -published_at": (
            "p95 <= 2x ref p95 + 3 ms",
            2 * p(ref_first, 0.95) + 3,
            0.95,
        ),
        "range + source + q": (
            "p95 <= 2x in-process p95 + 3 ms",
            2 * p(in_process, 0.95) + 3,
            0.95,
        ),
        "facet=published_at:month, whole corpus, uncached": ("p95 < 50 ms", 50.0, 0.95),
    }
    for name, values in times.items():
        line = (
            f"{name:<52} {len(values):>4} {p(name, 0.5):>6.2f}ms {p(name, 0.95):>6.2f}ms "
            f"{max(values):>6.1f}ms"
        )
        if name in targets:
            what, bound, share = targets[name]
            met = p(name, share) <= bound
            line += f"  {what} ({bound:.2f} ms): {'met' if met else 'NOT MET'}"
        print(line)
    first, dated = p(ref_first, 0.5), p("first page, sort=-published_at", 0.5)
    deep = p(f"item {DEEP_ITEM:,}, sort=-published_at", 0.5)
    print(
        f"ratios of p50 to the reference: first page {dated / first:.2f}x, deep {deep / first:.2f}x"
    )
    print(f"load average after the run: {os.getloadavg()}")


# -- Ingest with and without the news fields ---------------------------------------------------


def stripped(data: Path) -> Path:
    """The same records without author, date and url."""
    path = data.with_name(data.stem + "-plain.jsonl")
    if not path.exists():
        with data.open("rb") as f, path.open("wb") as out:
            for line in f:
                record = orjson.loads(line)
                for name in ("author", "date", "url"):
                    record.pop(name, None)
                out.write(orjson.dumps(record) + b"\n")
    return path


@contextmanager
def fresh_database(backend: str, work: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{work / 'corpus.db'}"
        return
    name = f"bench_dates_{os.getpid()}_{int(time.time())}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ingest_seconds(data: Path, backend: str) -> float:
    with (
        tempfile.TemporaryDirectory(prefix="bench-dates-", dir=OUT) as tmp,
        fresh_database(backend, Path(tmp)) as url,
    ):
        index_dir = Path(tmp) / "corpus.index"
        subprocess.run([CORPUS, "migrate", "--database-url", url], check=True, capture_output=True)
        cmd = [
            CORPUS,
            "ingest",
            str(data),
            "--database-url",
            url,
            "--index-dir",
            str(index_dir),
            "-q",
        ]
        print(f"$ {shlex.join(cmd)}", flush=True)
        started = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - started


def ingest_rate(args: argparse.Namespace) -> None:
    data = corpus_file(args.rows, args.seed)
    plain = stripped(data)
    with_fields: list[float] = []
    without: list[float] = []
    for _ in range(args.rounds):
        without.append(ingest_seconds(plain, args.backend))
        with_fields.append(ingest_seconds(data, args.backend))
    best_with, best_without = min(with_fields), min(without)
    print()
    print(f"ingest of {args.rows:,} records into {args.backend}, search index built in the run:")
    print(f"  with author, date, url     {', '.join(f'{s:.1f}s' for s in with_fields)}")
    print(f"  without them               {', '.join(f'{s:.1f}s' for s in without)}")
    rate = best_without / best_with
    print(
        f"  records/s with / without: {rate:.3f} (best of {args.rounds}); "
        f"within 5%: {'met' if rate >= 0.95 else 'NOT MET'}"
    )
    print(f"load average after the run: {os.getloadavg()}")


def wait_until_indexed(client: httpx.Client, timeout_s: float = 3600) -> None:
    """Until the search index, and the vector index when there is one, have caught up: a
    server that builds either (its first start on a database) is busy doing so."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = client.get("/readyz").json()
        states = [ready.get("search_index"), ready.get("vector_index")]
        if all(state is None or state.get("state") == "ready" for state in states):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the indexes did not become ready: {ready}")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--requests", type=int, default=200, help="per class")
    parser.add_argument("--ingest", action="store_true", help="compare ingest rates instead")
    parser.add_argument("--rounds", type=int, default=2, help="ingest rounds per side")
    args = parser.parse_args()
    args.connections, args.threads = 1, 1  # for list_api.header
    OUT.mkdir(parents=True, exist_ok=True)
    if args.ingest:
        print(f"# rows {args.rows:,}, backend {args.backend}, load average {os.getloadavg()}")
        ingest_rate(args)
        return
    data = corpus_file(args.rows, args.seed)
    url = (sqlite_database if args.backend == "sqlite" else pg_database)(args.rows, args.seed, data)
    header(args, url)
    warm_database(url)
    folder = index_path(Settings(database_url=url))
    env = {"CORPUS_ACCESS_LOG": "false", "CORPUS_INDEX_DIR": str(folder.resolve())}
    engine = create_engine(url)
    try:
        with (
            serve(url, env=env) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
            engine.connect() as connection,
        ):
            wait_until_indexed(client)
            index = SearchIndex.open(folder)
            assert index is not None
            warmup = max(1, args.requests // 4)
            requests = classes(
                client, InProcess(index, connection), args.requests + warmup, args.seed
            )
            # Warm up on requests of their own: a facet measured again would be a cached one.
            measure({name: runs[:warmup] for name, runs in requests.items()})
            times = measure({name: runs[warmup:] for name, runs in requests.items()})
    finally:
        engine.dispose()
    report(times)


if __name__ == "__main__":
    main()
