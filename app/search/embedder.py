"""Text to vectors: the one interface search by meaning uses, and the models behind it.

`CORPUS_EMBEDDER` names the model: `wordllama` (the default: static 256-dimension token
embeddings whose weights ship inside the `wordllama` wheel, CPU only), `wordllama:64` or
`wordllama:128` (the same model cut to fewer dimensions), `sentence-transformers:<path>`
(a sentence-transformers model in a folder on disk; the package must be installed), or
`none`, which turns search by meaning off. Nothing is ever downloaded: a model that is not
on disk is a configuration error at start. Knows nothing of HTTP or of the index.
"""

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache
from importlib import import_module
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.errors import ConfigurationError
from app.search.wordtable import SPAN, Hashes, Positions, RowTable, WordHasher

Vectors = npt.NDArray[np.float32]  # (n, dim), each row of unit length
OFF = "none"
DEFAULT = "wordllama"
WORDLLAMA = "wordllama/l2_supercat"  # the model the wheel carries
# What of an article is embedded: its title and the start of its body, where news puts
# what it is about; longer text costs time in proportion and adds little to its meaning.
BODY_CHARS = 1024
# A title longer than this is not a title (a broken record): its head is as much as is kept.
TITLE_CHARS = 1024
SLICE = 128  # texts embedded at once
# Words whose vectors an embedder keeps (1 KB each at 256 dimensions): news text repeats its
# words, so most of a text's words are found here and summed as one row each.
MAX_CACHED_WORDS = 32_768


class Embedder(Protocol):
    """A model that maps texts to unit vectors. `name` identifies the model and its
    dimension: an index built by another name is rebuilt, never mixed."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def article_text(title: str, content: str) -> str:
    """The text embedded for an article: bounded, whatever the record holds."""
    return f"{title[:TITLE_CHARS]}\n{content[:BODY_CHARS]}"


def _unit(vectors: npt.NDArray[Any]) -> Vectors:
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.maximum(norms, 1e-12)  # an empty text has no direction: it stays zero
    return out


class _Named:
    """An embedder's name (with its dimension) and dimension."""

    def __init__(self, name: str, dim: int) -> None:
        self._name = name
        self._dim = dim

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim


class _Model(_Named):
    """What every loaded embedder shares: a name with its dimension, and unit vectors out."""

    def __init__(self, name: str, dim: int) -> None:
        super().__init__(f"{name}/{dim}", dim)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), np.float32)
        # In slices: a model's working memory grows with the texts it is handed at once.
        parts = [
            _unit(self._encode(list(texts[i : i + SLICE]))) for i in range(0, len(texts), SLICE)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _encode(self, texts: list[str]) -> npt.NDArray[Any]:
        raise NotImplementedError


class WordLlamaEmbedder(_Model):
    """WordLlama's l2_supercat model from the installed wheel: the mean of the text's
    token embeddings. Loads in about 0.1 s and holds ~33 MB of weights, and up to
    MAX_CACHED_WORDS word vectors."""

    def __init__(self, dim: int = 256, *, cached_words: int = MAX_CACHED_WORDS) -> None:
        # The wheel carries the weights and the tokenizer, but `WordLlama.load()` looks for
        # the tokenizer under a folder the wheel does not use and then tries to download
        # it: point it at the package's own folder and forbid downloads.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        wordllama = import_module("wordllama")
        # Its import calls logging.basicConfig(level=INFO): leave the app's logging as it was.
        root.handlers[:], root.level = handlers, level
        folder = Path(str(wordllama.__file__)).parent
        try:
            self._model = wordllama.WordLlama.load(
                cache_dir=folder, disable_download=True, trunc_dim=dim if dim != 256 else None
            )
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"cannot load wordllama ({exc})") from None
        super().__init__(WORDLLAMA, dim)
        self._weights: npt.NDArray[np.float32] = self._model.embedding
        self._tokenizer = self._model.tokenizer
        self._tokenizer.no_padding()
        self._hasher = WordHasher()
        self._usual_capacity = cached_words
        self._size(cached_words)
        # Request threads embed queries at once, and a slice may move the cached rows.
        self._lock = threading.Lock()

    def _size(self, capacity: int) -> None:
        """Empty word vectors for `capacity` words (their pages touched as filled)."""
        self._capacity = capacity
        self._count = 0  # rows in use
        self._table = RowTable(capacity)  # a word's hash -> its row
        self._keys = np.zeros(capacity, np.uint64)  # a row's word's hash
        self._vectors = np.zeros((capacity, self.dim), np.float32)
        self._uses = np.zeros(capacity, np.int64)

    def _encode(self, texts: list[str]) -> npt.NDArray[Any]:
        """The mean of each text's token embeddings, as WordLlama's own `embed` computes it
        (cosine 0.9999 to its vectors), faster: its tokenizer splits at spaces anyway, so
        each distinct word is tokenized once and kept as the sum of its token rows, found
        again by its hash (app/search/wordtable.py), and a slice's texts are one sparse
        product of their words with the words' rows."""
        encoded = [text.encode() for text in texts]
        data = b" ".join(encoded)  # each text's words in turn
        if len(data) > SPAN and len(texts) > 1:  # in parts: the hasher's tables stay small
            half = len(texts) // 2
            return np.concatenate([self._encode(texts[:half]), self._encode(texts[half:])])
        with self._lock:
            hashes, starts, ends = self._hasher.hash_words(data)
            # Each text's last word ends at the space after the text (joined, or appended).
            sizes = np.fromiter(map(len, encoded), np.intp, len(encoded))
            last = np.searchsorted(ends, np.cumsum(sizes + 1) - 1)
            # np.diff(last, prepend=-1), without its ~20 µs of set-up on a one-word query.
            lengths = last.copy()
            lengths[0] += 1
            lengths[1:] -= last[:-1]
            rows = self._rows_of(hashes, data, starts, ends)
            self._uses += np.bincount(rows, minlength=self._capacity)
            return _sums(self._vectors, rows, lengths)

    def _rows_of(
        self, hashes: Hashes, data: bytes, starts: Positions, ends: Positions
    ) -> Positions:
        """Each word's row in _vectors, learning the words not kept yet (their text is
        `data[start:end]`), after making room for every word of the slice if need be."""
        rows = self._table.find(hashes)
        unknown = np.flatnonzero(rows < 0)
        if not len(unknown):
            return rows
        missing, first, where = np.unique(hashes[unknown], return_index=True, return_inverse=True)
        if self._count + len(missing) > self._capacity:
            self._evict(np.unique(hashes))  # moves rows, but keeps the slice's kept words
            rows = self._table.find(hashes)
        start, end = self._count, self._count + len(missing)
        # A word at a time: a slice meets a few new words, and encode_batch's thread pool
        # costs more than they do (220 µs a call on busy cores, for one to eight words).
        encode = self._tokenizer.encode
        tokens = [
            encode(data[starts[i] : ends[i]].decode(), add_special_tokens=False).ids
            for i in unknown[first].tolist()
        ]
        ids = np.fromiter(chain.from_iterable(tokens), np.intp)
        lengths = np.fromiter(map(len, tokens), np.intp, len(tokens))
        self._vectors[start:end] = _sums(self._weights, ids, lengths)  # a word's token rows
        self._uses[start:end] = 0
        self._keys[start:end] = missing
        self._table.insert(missing, np.arange(start, end))
        self._count = end
        rows[unknown] = start + where
        return rows

    def _evict(self, needed: Hashes) -> None:
        """Keep the `needed` words that are kept and the most used others (at most half of
        what is kept), leaving room for the rest of `needed`: in a table of the usual size,
        or one grown for a slice whose words alone are more (a slice of very long texts),
        which goes back to its usual size at the next that needs room."""
        kept = self._count
        found = self._table.find(needed)
        required = found[found >= 0]
        capacity = max(len(needed), self._usual_capacity)
        others = min(kept // 2, capacity - len(needed))
        uses = self._uses[:kept].copy()
        uses[required] = -1  # kept anyway, not counted among the others
        best = np.argsort(-uses, kind="stable")[:others]
        order = np.concatenate([required, best[uses[best] >= 0]])
        vectors, counts, keys = self._vectors[order], self._uses[order] // 2, self._keys[order]
        if capacity == self._capacity:
            self._table = RowTable(capacity)
        else:
            self._size(capacity)
        n = self._count = len(order)
        self._vectors[:n], self._keys[:n] = vectors, keys
        self._uses[:n] = counts  # old counts fade: new words stay
        self._table.insert(keys, np.arange(n))


def _sums(
    table: npt.NDArray[np.float32], rows: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """For each text, the sum of the `table` rows of its words: `rows` holds the texts'
    words in turn, `lengths` how many each has. One sparse product, a row per text with a
    one for each of its words, in compiled code and in one thread: a per-text gather and
    sum took 30-55 µs an article, a dense product of the texts' word counts 8-35 (it grows
    with the slice's distinct words), this one 5-9 (bench.semantic's corpus, with ~1,200
    distinct words a slice, and corpus synth's, with ~5,300)."""
    if len(lengths) == 1:  # a query: building the sparse matrix would cost more than this
        one: npt.NDArray[np.float32] = table[rows].sum(axis=0, keepdims=True)
        return one
    # Imported here: scipy.sparse costs ~23 MB of memory in every process that imports it,
    # and only a process that embeds slices (a load's, a follower's) needs it.
    from scipy import sparse

    ends = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=ends[1:])
    ones = np.ones(len(rows), np.float32)
    words = sparse.csr_array((ones, rows, ends), shape=(len(lengths), len(table)))
    sums: npt.NDArray[np.float32] = words @ table
    return sums


class SentenceTransformerEmbedder(_Model):
    """A sentence-transformers model from a folder on disk (never fetched from a hub)."""

    def __init__(self, path: str) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise ConfigurationError(f"no sentence-transformers model folder at {path}")
        try:
            module = import_module("sentence_transformers")
        except ImportError:
            raise ConfigurationError(
                "CORPUS_EMBEDDER names a sentence-transformers model, but the "
                "sentence-transformers package is not installed"
            ) from None
        self._model = module.SentenceTransformer(str(folder), local_files_only=True)
        dim = int(self._model.get_sentence_embedding_dimension())
        super().__init__(f"sentence-transformers/{folder.resolve()}", dim)

    def _encode(self, texts: list[str]) -> npt.NDArray[Any]:
        found: npt.NDArray[Any] = self._model.encode(texts, batch_size=64, convert_to_numpy=True)
        return found


def is_off(spec: str) -> bool:
    """Whether the CORPUS_EMBEDDER value `spec` turns search by meaning off."""
    return spec.strip() == OFF


@lru_cache(maxsize=4)
def load_embedder(spec: str) -> Embedder | None:
    """The embedder `spec` (a CORPUS_EMBEDDER value) names; None for `none`.
    ConfigurationError when it names nothing we can load. A model never changes once
    loaded, so every app of a process shares one copy."""
    if is_off(spec):
        return None
    kind, _, arg = spec.strip().partition(":")
    if kind == "wordllama":
        return WordLlamaEmbedder(_wordllama_dim(arg))
    if kind == "sentence-transformers" and arg:
        return SentenceTransformerEmbedder(arg)
    raise ConfigurationError(
        f"unknown embedder {spec!r}: use wordllama, wordllama:64, wordllama:128, "
        "sentence-transformers:<folder> or none"
    )


def _wordllama_dim(arg: str) -> int:
    try:
        dim = int(arg) if arg else 256
    except ValueError:
        dim = 0
    if dim not in (64, 128, 256):
        raise ConfigurationError(f"wordllama dimensions are 64, 128 or 256, not {arg!r}")
    return dim


class DeferredEmbedder(_Named):
    """The embedder `spec` names, loaded at its first `embed`: a process that only needs
    its name and dimension (a load whose embedding runs in a child process) never holds the
    model, ~105 MB with what it imports."""

    def __init__(self, spec: str, name: str, dim: int) -> None:
        super().__init__(name, dim)
        self._spec = spec

    def embed(self, texts: Sequence[str]) -> Vectors:
        loaded = load_embedder(self._spec)
        assert loaded is not None
        assert (loaded.name, loaded.dim) == (self._name, self._dim)
        return loaded.embed(texts)


def deferred_embedder(spec: str) -> Embedder | None:
    """The embedder `spec` names, not loaded until it embeds when its name and dimension
    follow from `spec` alone (wordllama); loaded now otherwise. None for `none`."""
    kind, _, arg = spec.strip().partition(":")
    if kind != "wordllama":
        return load_embedder(spec)
    dim = _wordllama_dim(arg)
    return DeferredEmbedder(spec, f"{WORDLLAMA}/{dim}", dim)
