"""One huge article: do searches that hit it stall the rest of the server?

    python -m bench.large_article [--backend sqlite|postgresql] [--megabytes 50]
                                  [--rows 5000] [--searchers 4] [--duration 10]

Seeds a throwaway database with a synthetic corpus plus one article of `--megabytes` MB
(loaded with the ingest limit raised; its id in the middle, so the plain list below does
not show it), starts `uvicorn --factory app.main:create_app` on loopback, and measures
`/healthz` and a plain list (`/v1/articles?limit=20`), each requested one after another:
alone, then while `--searchers` clients search for a word of ordinary articles (the
reference: what any searches cost the probes), then while they search for a word of the
huge article. Every search is new, so no kept reply answers it. Prints p50/p99/max of both
probes in each phase and the ratio of their p99 with the huge article's searches to their
p99 with ordinary ones. Also times single requests that touch the huge article.
"""

import argparse
import itertools
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import sqlalchemy

from app import synth
from app.db import make_engine, migrate
from app.ingest.pipeline import ingest
from app.settings import Settings
from bench.load import database, drop
from tests.factories import large_record
from tests.live import LiveServer, latencies_ms, percentile, serve, wait_for_search

PROBES = {"healthz": "/healthz", "list": "/v1/articles?limit=20"}


def seed(url: str, rows: int, megabytes: int, workdir: Path) -> int:
    """The synthetic corpus and the huge article; the huge article's id."""
    migrate(url)
    corpus = workdir / "corpus.jsonl"
    synth.write(corpus, rows)
    large_id = rows // 2  # replaces a synthetic article
    large = workdir / "large.jsonl"
    large.write_bytes(orjson.dumps(large_record(large_id, megabytes)) + b"\n")
    engine = make_engine(Settings(database_url=url), pooled=False)
    try:
        ingest([corpus, large], engine, on_reject=print, max_content_bytes=(megabytes + 1) << 20)
    finally:
        engine.dispose()
    return large_id


def searching(
    server: LiveServer, word: str, until: threading.Event, numbers: "itertools.count[int]"
) -> int:
    done = 0
    with httpx.Client(base_url=server.url, timeout=120.0) as client:
        while not until.is_set():
            q = f"{word} -zq{next(numbers)}"  # a word no article holds: a new search each time
            client.get("/v1/articles", params={"q": q, "limit": 20}).raise_for_status()
            done += 1
    return done


def phase(
    server: LiveServer, word: str, searchers: int, duration_s: float
) -> tuple[dict[str, list[float]], int]:
    """Latencies of each probe, and the searches for `word` done, over `duration_s`."""
    until = threading.Event()
    numbers = itertools.count()
    with ThreadPoolExecutor(len(PROBES) + searchers) as pool:
        probes = {
            name: pool.submit(latencies_ms, server.url + path, until)
            for name, path in PROBES.items()
        }
        searches = [pool.submit(searching, server, word, until, numbers) for _ in range(searchers)]
        until.wait(duration_s)
        until.set()
        return {name: f.result() for name, f in probes.items()}, sum(s.result() for s in searches)


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:8} n={len(values):5}  p50 {percentile(values, 0.5):8.1f} ms  "
        f"p99 {percentile(values, 0.99):8.1f} ms  max {max(values):8.1f} ms"
    )


def once(server: LiveServer, path: str) -> float:
    started = time.perf_counter()
    httpx.get(server.url + path, timeout=120.0).raise_for_status()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--searchers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    print(
        f"# python {platform.python_version()}, sqlalchemy {sqlalchemy.__version__}, "
        f"{os.cpu_count()} CPUs, backend {args.backend}, {args.rows} rows + one article of "
        f"{args.megabytes} MB, {args.searchers} searchers, {args.duration:.0f} s a phase"
    )
    with tempfile.TemporaryDirectory(prefix="corpus-large-") as tmp:
        workdir = Path(tmp)
        url = database(args.backend, workdir)
        env = {"CORPUS_INDEX_ROOT": str(workdir / "index")}
        phases: dict[str, tuple[dict[str, list[float]], int]] = {}
        try:
            large_id = seed(url, args.rows, args.megabytes, workdir)
            with serve(url, env=env) as server:
                wait_for_search(server, timeout_s=600)
                for label, path in (
                    ("a search that hits it", "/v1/articles?q=palmyra"),
                    ("its similar articles", f"/v1/articles/{large_id}/similar"),
                    ("a list page that holds it", f"/v1/articles?id_max={large_id}"),
                    ("its detail", f"/v1/articles/{large_id}"),
                ):
                    print(f"{label}: {once(server, path):.1f} ms")
                excerpt = httpx.get(f"{server.url}/v1/articles?limit=1").json()["items"][0]
                ordinary = excerpt["excerpt"].split()[1].strip(".,").lower()
                phases["alone"] = phase(server, ordinary, 0, args.duration)
                phases[f"ordinary searches ({ordinary})"] = phase(
                    server, ordinary, args.searchers, args.duration
                )
                phases["searches that hit it"] = phase(
                    server, "palmyra", args.searchers, args.duration
                )
        finally:
            drop(url)
    for label, (latencies, searches) in phases.items():
        rate = f", {searches / args.duration:.1f} searches/s" if searches else ""
        print(f"{label}{rate}:")
        for name, values in latencies.items():
            print("  " + line(name, values))
    reference, hit = list(phases.values())[1][0], list(phases.values())[2][0]
    for name in PROBES:
        ratio = percentile(hit[name], 0.99) / percentile(reference[name], 0.99)
        print(f"ratio {name} p99, searches that hit it / ordinary searches: {ratio:.2f}")


if __name__ == "__main__":
    main()
