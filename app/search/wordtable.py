"""Words of UTF-8 text as 64-bit hashes, and a table from hashes to rows, both in numpy.

The embedder looks up every word of a slice of texts (~18,000 for 128 news articles): one
`str` and one dict lookup per word cost 21.7 µs an article, where hashing the slice's bytes
and probing a table a few numpy operations at a time costs 7.4 (bench.semantic's corpus).

A word's hash is a polynomial over its bytes and the space after it, modulo 2**64: each
byte weighted by the power of its place in the whole text, one segmented sum a word
(`np.add.reduceat`), then each word's sum weighted back to its own start. The weight
carries an odd factor too, so the top bits, where the table finds a word's slot, depend on
every byte (Fibonacci hashing). Words that differ get different hashes but for chance
(~3e-8 that any two of a million distinct words collide, which would give one the other's
vector). Knows nothing of models.
"""

import numpy as np
import numpy.typing as npt

Hashes = npt.NDArray[np.uint64]
Positions = npt.NDArray[np.intp]

SPACE = 0x20  # never inside a multi-byte UTF-8 character: bytes split where the str would
_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_SPREAD = 0xBF58476D1CE4E5B9  # odd: a bijection that carries low bits up to the slot bits
_WRAP = 1 << 64
# Text hashed at once at most, in bytes (its tables take 24 bytes a byte): callers cut
# longer runs of texts, and a single longer text grows the tables for itself.
SPAN = 1 << 17


def _powers(base: int, n: int, first: int = 1) -> Hashes:
    """first * base**i modulo 2**64 for i < n, by doubling: numpy's uint64 products wrap."""
    out = np.empty(n, np.uint64)
    out[0] = first
    done = 1
    while done < n:
        step = min(done, n - done)
        np.multiply(out[:step], np.uint64(pow(base, done, _WRAP)), out=out[done : done + step])
        done += step
    return out


class WordHasher:
    """Hashes the words of texts. Holds the powers of the base and of its inverse, and a
    buffer for the weighted bytes, for the longest text it has hashed (3 MB at SPAN); not
    shared between threads."""

    def __init__(self) -> None:
        self._up = self._down = self._weighted = np.zeros(0, np.uint64)

    def _tables(self, n: int) -> tuple[Hashes, Hashes, Hashes]:
        if len(self._up) < n:
            size = max(n, SPAN)
            self._up = _powers(_BASE, size)
            self._down = _powers(pow(_BASE, -1, _WRAP), size, first=_SPREAD)
            self._weighted = np.empty(size, np.uint64)
        return self._up[:n], self._down, self._weighted[:n]

    def hash_words(self, data: bytes) -> tuple[Hashes, Positions, Positions]:
        """Each word's hash, the words cut at every space as `str.split(" ")` cuts them
        (empty words included), and where each starts and ends in `data`."""
        raw = np.frombuffer(data + b" ", np.uint8)  # every word ends with a space
        up, down, weighted = self._tables(len(raw))
        np.multiply(raw, up, out=weighted)  # byte j times base**j
        ends = np.flatnonzero(raw == SPACE)
        starts = np.empty_like(ends)
        starts[0] = 0
        np.add(ends[:-1], 1, out=starts[1:])
        # A word's bytes and its space, weighted from its own start: the same anywhere.
        # (One segmented sum: a running sum over the bytes and a difference a word took
        # 6.3-6.6 µs an article in the embedder, this 5.7-5.9.)
        hashes = np.add.reduceat(weighted, starts)
        hashes *= down[starts]
        return hashes, starts, ends


class RowTable:
    """Distinct 64-bit keys to rows: open addressing with linear probing over two arrays
    at most a quarter full, so that a lookup is a few vectorized probes."""

    def __init__(self, capacity: int) -> None:
        slots = 1 << max(4, (4 * capacity - 1).bit_length())
        self._bits = np.uint64(64 - (slots.bit_length() - 1))
        self._mask = slots - 1
        self._keys = np.zeros(slots, np.uint64)
        self._rows = np.full(slots, -1, np.intp)

    def _home(self, keys: Hashes) -> Positions:
        home: Positions = (keys >> self._bits).astype(np.intp)
        return home

    def find(self, keys: Hashes) -> Positions:
        """Each key's row; -1 for a key not in the table."""
        slots = self._home(keys)
        found = self._rows[slots]
        hit = (self._keys[slots] == keys) & (found >= 0)
        if hit.all():  # most words sit in their home slot
            return found
        todo = np.flatnonzero(~hit & (found >= 0))  # an empty slot ends a search
        found[~hit] = -1
        slots = (slots[todo] + 1) & self._mask
        while len(todo):
            rows = self._rows[slots]
            hit = (self._keys[slots] == keys[todo]) & (rows >= 0)
            found[todo[hit]] = rows[hit]
            going_on = ~hit & (rows >= 0)
            todo = todo[going_on]
            slots = (slots[going_on] + 1) & self._mask
        return found

    def insert(self, keys: Hashes, rows: Positions) -> None:
        """Add keys that are distinct and not in the table (at most `capacity` in all).
        Keys take free slots in rounds, one key a slot a round, the rest moving on a
        slot: every slot between a key's home and its place is full, as probing needs."""
        slots = self._home(keys)
        todo = np.arange(len(keys))
        while len(todo):
            free = np.flatnonzero(self._rows[slots] < 0)
            _, first = np.unique(slots[free], return_index=True)
            won = free[first]  # one key for each free slot
            self._keys[slots[won]] = keys[todo[won]]
            self._rows[slots[won]] = rows[todo[won]]
            placed = np.zeros(len(todo), bool)
            placed[won] = True
            todo = todo[~placed]
            slots = (slots[~placed] + 1) & self._mask
