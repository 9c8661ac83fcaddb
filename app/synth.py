"""A seeded synthetic corpus with realistic shape, for benchmarks and large tests.

Words follow a Zipf distribution over a fixed pseudo-word vocabulary, so a few words are
in nearly every article and most are rare, as in real news text. Titles have 4-20 words,
bodies 1.5-4.5 KB (3 KB on average), and articles spread over 20 named sources. Like the
Kaggle dumps, each record also carries `author`, `date` (a date-time spread over four years)
and `url`, which ingest reads as the article's byline, publication date and url.
Same seed, same corpus, byte for byte.

Speed: drawing every word from the Zipf weights cost ~0.7 ms an article. Sentences and
title phrases are drawn that way once, into pools; an article then picks whole pool
entries by uniform index, so a million articles take seconds, not minutes.
"""

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from app.files import open_for_write

VOCABULARY_SIZE = 20_000
SOURCES = 20
AUTHORS = 500
SENTENCE_POOL = 1 << 15  # ~3 MB of text: few repeats inside one article, fast to build
TITLE_PHRASE_POOL = 1 << 12
BODY_CHARS = (1536, 4608)
FIRST_DAY = datetime(2016, 1, 1, tzinfo=UTC)
SPAN_S = 4 * 365 * 86_400  # dates over four years, to the second
_PUBLISHER_WORDS = ("Daily", "Evening", "Morning", "Weekly", "National", "City")
_PUBLISHER_NOUNS = ("Herald", "Courier", "Gazette", "Post", "Chronicle", "Tribune", "Ledger")
MEAN_SENTENCE_CHARS = 100  # 8-24 words of ~5 characters, plus spaces
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


def _pools(rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """Zipf-distributed sentences, title phrases and author names, drawn once per corpus."""
    words = vocabulary(rng.randrange(1 << 30))
    cum = zipf_weights(len(words))
    sentences = [
        " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(8, 24))).capitalize() + "."
        for _ in range(SENTENCE_POOL)
    ]
    phrases = [
        " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(2, 5))).title()
        for _ in range(TITLE_PHRASE_POOL)
    ]
    authors = [
        " ".join(rng.choices(words[500:], k=2)).title() for _ in range(AUTHORS)
    ]  # names are rare words
    return sentences, phrases, authors


def articles(
    count: int, *, seed: int = 0, first_id: int = 1, body_chars: tuple[int, int] = BODY_CHARS
) -> Iterator[dict[str, object]]:
    """`count` article records with ids from `first_id` upward, bodies within `body_chars`."""
    rng = random.Random(seed)
    sentences, phrases, authors = _pools(rng)
    randint, choices = rng.randint, rng.choices
    for article_id in range(first_id, first_id + count):
        target = randint(*body_chars)
        body = " ".join(choices(sentences, k=target // MEAN_SENTENCE_CHARS + 4))
        source_id = randint(1, SOURCES)
        published = FIRST_DAY + timedelta(seconds=randint(0, SPAN_S - 1))
        yield {
            "title": " ".join(choices(phrases, k=randint(2, 4))),
            "content": body[:target],
            "source_id": source_id,
            "article_id": article_id,
            "author": authors[randint(0, AUTHORS - 1)],
            "date": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "url": f"https://news{source_id}.example/{published:%Y/%m/%d}/{article_id}",
        }


def source_names(seed: int = 0) -> dict[str, str]:
    """A publisher's name for each of the SOURCES ids, as a sources file holds them."""
    names = [f"The {w} {n}" for w in _PUBLISHER_WORDS for n in _PUBLISHER_NOUNS]
    chosen = random.Random(seed).sample(names, SOURCES)
    return {str(source_id): name for source_id, name in enumerate(chosen, start=1)}


def write(
    path: Path,
    count: int,
    *,
    seed: int = 0,
    first_id: int = 1,
    body_chars: tuple[int, int] = BODY_CHARS,
) -> int:
    """Write JSON Lines (gzipped for a .gz name); bytes written before compression."""
    written = 0
    dumps = orjson.dumps
    with open_for_write(path) as f:
        for record in articles(count, seed=seed, first_id=first_id, body_chars=body_chars):
            line = dumps(record) + b"\n"
            f.write(line)
            written += len(line)
    return written
