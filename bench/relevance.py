"""Search quality per mode, on a corpus whose topics are known (bench/topics.py).

    python -m bench.relevance [--articles 2000] [--backend sqlite|postgresql] [--similar 200]

Writes the synthetic topic corpus (generated, not read from any search), loads it with
`corpus ingest` into a throwaway database, and asks the API in process (httpx over
ASGITransport, the whole middleware stack) every query of every topic in each mode:
`keyword`, `semantic` and `hybrid`. An article is relevant when it is about the query's
topic. Prints, per mode and per query class, nDCG@10 and recall@100; and for
`/v1/articles/{id}/similar` the share of the first 10 that are about the article's topic.
Then the issue's bars: hybrid above keyword on both measures overall, and on no class more
than 2 points below the better of keyword and semantic.
"""

import argparse
import asyncio
import math
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import orjson

from bench import topics
from bench.search import database
from tests.factories import make_client

MODES = ("keyword", "semantic", "hybrid")
CORPUS = str(Path(sys.executable).with_name("corpus"))
BAR_POINTS = 0.02  # hybrid may trail the better of the two by at most this on any class


def ndcg_at_10(relevant: list[bool], ideal_hits: int) -> float:
    gain = sum(1 / math.log2(i + 2) for i, hit in enumerate(relevant[:10]) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, ideal_hits)))
    return gain / ideal if ideal else 0.0


def load(articles: list[topics.Article], url: str, work: Path) -> None:
    path = work / "topics.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(a.record()) for a in articles) + b"\n")
    for cmd in (
        [CORPUS, "migrate", "--database-url", url],
        [CORPUS, "ingest", str(path), "--database-url", url, "--quiet"],
    ):
        print(f"$ {shlex.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


async def measure(url: str, articles: list[topics.Article], similar: int, seed: int) -> None:
    topic_of = {a.article_id: a.topic for a in articles}
    sizes = [sum(1 for a in articles if a.topic == t) for t in range(len(topics.TOPICS))]
    scores: dict[tuple[str, str], list[tuple[float, float]]] = {}
    async with make_client(url) as client:
        for t, topic in enumerate(topics.TOPICS):
            for kind in topics.CLASSES:
                for q in topic.queries[kind]:
                    for mode in MODES:
                        params: dict[str, str | int] = {
                            "q": q,
                            "mode": mode,
                            "limit": 100,
                            "fields": "article_id",
                        }
                        reply = await client.get("/v1/articles", params=params)
                        reply.raise_for_status()
                        hits = [topic_of[i["article_id"]] == t for i in reply.json()["items"]]
                        pair = (ndcg_at_10(hits, sizes[t]), sum(hits) / sizes[t])
                        scores.setdefault((mode, kind), []).append(pair)
        sample = random.Random(seed).sample(articles, min(similar, len(articles)))
        shares: dict[str, list[float]] = {}
        for article in sample:
            for mode in MODES:
                params = {"mode": mode, "limit": 10, "fields": "article_id"}
                reply = await client.get(
                    f"/v1/articles/{article.article_id}/similar", params=params
                )
                reply.raise_for_status()
                found = [topic_of[i["article_id"]] == article.topic for i in reply.json()["items"]]
                shares.setdefault(mode, []).append(sum(found) / 10)
    report(scores, shares)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def report(
    scores: dict[tuple[str, str], list[tuple[float, float]]], shares: dict[str, list[float]]
) -> None:
    classes = (*topics.CLASSES, "all")

    def figure(mode: str, kind: str, which: int) -> float:
        if kind == "all":
            pairs = [p for k in topics.CLASSES for p in scores[(mode, k)]]
        else:
            pairs = scores[(mode, kind)]
        return _mean([p[which] for p in pairs])

    print()
    print(f"{'mode':<9}" + "".join(f"{c + ' nDCG@10':>18}{'R@100':>7}" for c in classes))
    for mode in MODES:
        cells = "".join(f"{figure(mode, c, 0):>18.3f}{figure(mode, c, 1):>7.3f}" for c in classes)
        print(f"{mode:<9}{cells}")
    counts = ", ".join(f"{k} {len(scores[('keyword', k)])}" for k in topics.CLASSES)
    print(f"(queries per class: {counts})")
    print()
    print("similar articles: share of the first 10 about the article's topic")
    for mode in MODES:
        print(f"  {mode:<9}{_mean(shares[mode]):.3f}  ({len(shares[mode])} articles)")
    print()
    for which, name in ((0, "nDCG@10"), (1, "recall@100")):
        hybrid, keyword = figure("hybrid", "all", which), figure("keyword", "all", which)
        met = "met" if hybrid > keyword else "NOT met"
        print(f"hybrid above keyword on {name}: {hybrid:.3f} vs {keyword:.3f}: {met}")
    for kind in topics.CLASSES:
        for which, name in ((0, "nDCG@10"), (1, "recall@100")):
            best = max(figure("keyword", kind, which), figure("semantic", kind, which))
            hybrid = figure("hybrid", kind, which)
            met = "met" if hybrid >= best - BAR_POINTS else "NOT met"
            print(f"{kind:<11}{name:<11} hybrid {hybrid:.3f}, best of two {best:.3f}: {met}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--similar", type=int, default=200, help="articles asked for /similar")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    topics.check_paraphrases()
    names = ("tantivy", "wordllama", "numkong", "numpy")
    print(f"# python {platform.python_version()}, " + ", ".join(f"{n} {version(n)}" for n in names))
    print(f"# cpus {os.cpu_count()}, load average {tuple(round(x, 2) for x in os.getloadavg())}")
    print(
        f"# backend {args.backend}, {args.articles} articles over {len(topics.TOPICS)} topics, "
        f"seed {args.seed}"
    )
    articles = list(topics.articles(args.articles, seed=args.seed))
    with tempfile.TemporaryDirectory(prefix="relevance-") as tmp:
        work = Path(tmp)
        os.environ["CORPUS_INDEX_ROOT"] = str(work / "index")
        with database(args.backend, work) as url:
            load(articles, url, work)
            asyncio.run(measure(url, articles, args.similar, args.seed))


if __name__ == "__main__":
    main()
