"""A seeded synthetic corpus with realistic shape, for benchmarks and large tests.

Words follow a Zipf distribution over a fixed pseudo-word vocabulary, so a few words are
in nearly every article and most are rare, as in real news text. Titles have 5-15 words,
bodies 2-6 KB, and articles spread over 20 sources. Same seed, same corpus, byte for byte.
"""

import gzip
import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import orjson

VOCABULARY_SIZE = 20_000
SOURCES = 20
_SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["ing", "er", "on", "al"]


def vocabulary(seed: int = 0) -> list[str]:
    """VOCABULARY_SIZE distinct pseudo-words, most frequent first."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < VOCABULARY_SIZE:
        words["".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4)))] = None
    return list(words)


def zipf_weights(n: int, s: float = 1.07) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


def articles(count: int, *, seed: int = 0, first_id: int = 1) -> Iterator[dict[str, object]]:
    """`count` article records with ids from `first_id` upward."""
    rng = random.Random(seed)
    words = vocabulary(seed)
    cum = zipf_weights(len(words))
    for article_id in range(first_id, first_id + count):
        title_words = rng.choices(words, cum_weights=cum, k=rng.randint(5, 15))
        target = rng.randint(2048, 6144)
        sentences: list[str] = []
        size = 0
        while size < target:
            sentence = rng.choices(words, cum_weights=cum, k=rng.randint(8, 24))
            text = " ".join(sentence).capitalize() + "."
            sentences.append(text)
            size += len(text) + 1
        yield {
            "title": " ".join(title_words).title(),
            "content": " ".join(sentences)[:target],
            "source_id": rng.randint(1, SOURCES),
            "article_id": article_id,
        }


def _open_for_write(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
    return path.open("wb")


def write(path: Path, count: int, *, seed: int = 0, first_id: int = 1) -> int:
    """Write JSON Lines (gzipped for a .gz name); bytes written before compression."""
    written = 0
    with _open_for_write(path) as f:
        for record in articles(count, seed=seed, first_id=first_id):
            line = orjson.dumps(record) + b"\n"
            f.write(line)
            written += len(line)
    return written
