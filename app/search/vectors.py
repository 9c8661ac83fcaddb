"""The vector index: one folder of quantized article vectors, derived from one database.

A folder (beside the search index's: `data/corpus.index` has `data/corpus.vectors`) holds

    manifest.json  the database id, the embedder and dimension, the revision applied, the
                   generation of the row files, how many rows count, and the live file
    g<G>.ids       uint64 article_id per row       g<G>.sources    uint64 source_id per row
    g<G>.published int64 published_at per row (microseconds; UNDATED for none)
    g<G>.bits<J>   uint64 per row: the J-th 64 of each dimension's sign bit (the coarse pass)
    g<G>.vectors   dim int8 per row: each component times `scale` (the fine pass)
    live-<N>.u8    one byte per row: 1 while the row is its article's current vector

Rows are only appended: a changed article gets a new row and its old row's live byte is
cleared; a takedown clears it. A commit appends the rows, writes a new live file, then
replaces the manifest by a rename, so a manifest never names rows or a live file that do
not exist, whatever moment a crash hits; the writer cuts the files back to the manifest's
rows when it opens them. When a quarter of the rows are dead, a commit copies the live
ones to a new generation.

Search is exact over the quantized vectors (`VectorView.nearest`): the Hamming distance
of sign bits (the query's strong half of them) over every row the filter admits, then the
dot product of the int8 vectors of the best few thousand. The sign bits are stored a
64-bit word per file, so the coarse pass is a few numpy operations per word over blocks of
rows, shared among the cores (2.9 ms at a million rows on one core, where a kernel over
row-major codes took 14 ms: bench/semantic.py). Readers map the files, so their pages are
the host's page cache, shared by its workers, not private memory. Knows nothing of HTTP or
of the database.
"""

import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numkong
import numpy as np
import numpy.typing as npt
import orjson

from app.cpus import cores
from app.search.embedder import Vectors, load_embedder

log = logging.getLogger(__name__)

FORMAT = 3  # 2: 64-bit source ids; 3: sign bits in 64-bit word columns
UNDATED = int(np.iinfo(np.int64).min)
MANIFEST = "manifest.json"
# One value per row, by file suffix.
COLUMNS: dict[str, type[np.generic]] = {
    "ids": np.uint64,
    "sources": np.uint64,
    "published": np.int64,
}
# The coarse pass hands the fine pass at least this many rows, twice what is asked, and a
# share of the rows admitted: at 100k rows of clustered news, 2,048 kept recall@10 at 0.964
# of exact float32 search, 4,096 at 0.973 (int8 alone caps it at 0.982), and a larger
# corpus holds more near-ties, so the share keeps the pass as selective (1/128 since the
# pass compares the query's strong dimensions alone: see strong_words).
CANDIDATES = 4096
# Rows of the coarse pass per numpy call (1 MB of XORs), in parts of whole SCAN_STEPs.
# At a million rows on two cores, blocks of 2**16 rows took 7.3 ms a query (p50), 2**17
# 6.7 and 2**18 6.4-6.7 (fewer calls, fewer handovers of the GIL between the parts); a
# part stays at least 2**16 rows, so that 200,000 rows still scan in two parts.
HAMMING_BLOCK = 1 << 17
SCAN_STEP = 1 << 16
CANDIDATE_SHARE = 1 / 128
# A query's scans (the coarse pass, the gather of the fine pass's candidates) run in up to
# this many parts at once, one per core: numpy's loops and takes release the GIL, and on two
# cores at a million rows the coarse pass took 5.3 -> 3.5 ms and the gather 1.6-2.5 -> 0.8.
SCAN_PARTS = max(1, min(4, cores()))
GATHER_STEP = 2048  # candidates per part of the gather, at least
_SCANS = ThreadPoolExecutor(max(1, SCAN_PARTS - 1), thread_name_prefix="vector-scan")
# A prime: rows written in a repeating order (a feed's sources in turn) would bias a
# stride that shares a factor with its period (every 16th row missed the cut by up to 17).
SAMPLE_STRIDE = 31
# A filter that admits no more rows than this is scored exactly, without the coarse pass.
EXACT_BELOW = 4096
# Pending rows past this many go to the files before the commit (a few MB at 256 dims).
FLUSH_ROWS = 16_384
COMPACT_DEAD_SHARE = 0.25
COMPACT_MIN_DEAD = 10_000

Hit = tuple[float, int]  # (similarity, article_id)
Bools = npt.NDArray[np.bool_]
Distances = npt.NDArray[np.uint8 | np.uint16]  # the coarse pass's, per row


def vectors_path(index_folder: Path) -> Path:
    """The vector folder beside a search index folder."""
    return index_folder.with_name(index_folder.name.removesuffix(".index") + ".vectors")


def quant_scale(dim: int) -> float:
    """int8 steps per unit: unit vectors' components stay within about 6/sqrt(dim)."""
    return 127.0 / min(1.0, 6.0 / math.sqrt(dim))


@dataclass(frozen=True, slots=True)
class VectorMeta:
    database_id: str
    embedder: str
    dim: int
    revision: int = 0
    generation: int = 0
    rows: int = 0
    live: str = ""
    format: int = FORMAT

    @property
    def scale(self) -> float:
        return quant_scale(self.dim)

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> "VectorMeta":
        data = orjson.loads(raw)
        return cls(
            database_id=str(data["database_id"]),
            embedder=str(data["embedder"]),
            dim=int(data["dim"]),
            revision=int(data["revision"]),
            generation=int(data["generation"]),
            rows=int(data["rows"]),
            live=str(data["live"]),
            format=int(data["format"]),
        )


def _file(folder: Path, generation: int, column: str) -> Path:
    return folder / f"g{generation}.{column}"


def _words(dim: int) -> int:
    """64-bit words of sign bits per row."""
    return -(-dim // 64)


def _bits(word: int) -> str:
    return f"bits{word}"


def _widths(dim: int) -> dict[str, tuple[type[np.generic], int]]:
    """Each row file's dtype and values per row."""
    found: dict[str, tuple[type[np.generic], int]] = {k: (t, 1) for k, t in COLUMNS.items()}
    found.update({_bits(j): (np.uint64, 1) for j in range(_words(dim))})
    found["vectors"] = (np.int8, dim)
    return found


def sign_words(vectors: Vectors) -> npt.NDArray[np.uint64]:
    """Each vector's sign bits packed into 64-bit words (the last padded with zero bits,
    which add no distance): shape (..., words)."""
    return _as_words(np.packbits(vectors > 0, axis=-1))


def _as_words(packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    pad = -packed.shape[-1] % 8
    if pad:
        packed = np.pad(packed, [(0, 0)] * (packed.ndim - 1) + [(0, pad)])
    words: npt.NDArray[np.uint64] = np.ascontiguousarray(packed).view(np.uint64)
    return words


def _strong_count(dim: int) -> int:
    """How many of a query's dimensions the coarse pass compares: its strong half."""
    return max(1, dim // 2)


def strong_words(query: Vectors) -> npt.NDArray[np.uint64]:
    """A mask, in sign-bit words, of the query's strong dimensions: the half of its
    components largest in magnitude. A row's sign in a dimension where the query is near
    zero says little of their dot product; at a million rows of the topic corpus, counting
    only the strong half's differing bits ranks rows so much better that a coarse pass
    keeping 1/128 of them recalls as much as one over every bit keeping 1/64 (recall@10
    0.959-0.965 against 0.952-0.965 over three sets of 300 queries), so the fine pass
    reads half the rows."""
    dim = len(query)
    strong = np.zeros(dim, bool)
    strong[np.argsort(-np.abs(query), kind="stable")[: _strong_count(dim)]] = True
    return _as_words(np.packbits(strong))


def _distance_type(dim: int) -> type[np.uint8] | type[np.uint16]:
    """The narrowest type that holds every distance and, above them, the never-a-candidate
    mark (its largest value)."""
    return np.uint8 if _strong_count(dim) < np.iinfo(np.uint8).max else np.uint16


# Unit vectors as a folder stores them: sign bits (in words) and int8 components.
Quantized = tuple[npt.NDArray[np.uint64], npt.NDArray[np.int8]]


def quantize(vectors: Vectors, scale: float) -> Quantized:
    """Sign bits (in words) and int8 components of unit vectors."""
    return sign_words(vectors), _int8(vectors, scale)


def embed_quantized(spec: str, texts: list[str], scale: float) -> Quantized:
    """In an embedding process: the texts' vectors by the embedder `spec` names, quantized
    as the folder stores them (a quarter of the bytes to send back, and that work done
    beside the load rather than in it). Here, not beside the load that sends the work: a
    spawned process imports the module of the function it runs, and this one's imports are
    the model's and numpy's, not the database's."""
    embedder = load_embedder(spec)
    assert embedder is not None
    return quantize(embedder.embed(texts), scale)


def _int8(vectors: Vectors, scale: float) -> npt.NDArray[np.int8]:
    """Each component times `scale`, rounded, within int8: the folder's rows and a query alike."""
    scaled = np.clip(np.rint(vectors * np.float32(scale)), -127, 127)
    rounded: npt.NDArray[np.int8] = scaled.astype(np.int8)
    return rounded


@dataclass(frozen=True, slots=True)
class VectorView:
    """One commit of a vector folder, as one request reads it."""

    meta: VectorMeta
    ids: npt.NDArray[np.uint64]
    sources: npt.NDArray[np.uint64]
    published: npt.NDArray[np.int64]
    bits: tuple[npt.NDArray[np.uint64], ...]  # one word column per 64 dimensions
    vectors: npt.NDArray[np.int8]
    live: Bools

    @property
    def revision(self) -> int:
        return self.meta.revision

    def nearest(self, query: Vectors, k: int, allowed: Bools | None = None) -> list[Hit]:
        """The `k` live rows nearest `query` (a unit vector) among those `allowed` admits,
        as (cosine similarity, article_id), best first; ties by article_id, highest first.
        Never a row outside `allowed`, and `k` of them whenever that many are admitted."""
        mask = self.live if allowed is None else self.live & allowed
        admitted = int(np.count_nonzero(mask))
        if admitted == 0 or k <= 0:
            return []
        wanted = max(CANDIDATES, 2 * k, int(admitted * CANDIDATE_SHARE))
        if admitted <= max(EXACT_BELOW, wanted):
            rows = np.flatnonzero(mask)
        else:
            rows = self._coarse(query, mask, wanted)
        return self._fine(query, rows, k)

    def _hamming(self, query: Vectors) -> Distances:
        """Every row's Hamming distance from the query's sign bits over the query's strong
        dimensions (`strong_words`): per word column, one XOR, one AND and one bit count
        (numpy's loops, no Python per row), HAMMING_BLOCK rows at a time into buffers that
        stay in the CPU's cache (whole columns wrote and read back ~30 MB of temporaries a
        column at a million rows: 4.4 ms, blocks 2.9), in parts of whole SCAN_STEPs shared
        among SCAN_PARTS threads. The distances fit a byte for up to 508 dimensions, which
        halves the sums' and the cut's memory traffic."""
        words, strong = sign_words(query), strong_words(query)
        rows = len(self.bits[0])
        found = np.empty(rows, _distance_type(len(query)))
        used = [(c, w, m) for c, w, m in zip(self.bits, words, strong, strict=True) if m]

        def scan(first: int, last: int) -> None:  # its own buffers: parts run at once
            block = max(1, min(last - first, HAMMING_BLOCK))
            xor = np.empty(block, np.uint64)
            bits = np.empty(block, np.uint8)
            for start in range(first, last, block):
                end = min(last, start + block)
                into, x, b = found[start:end], xor[: end - start], bits[: end - start]
                for i, (column, word, mask) in enumerate(used):
                    np.bitwise_xor(column[start:end], word, out=x)
                    np.bitwise_and(x, mask, out=x)
                    if i:
                        np.bitwise_count(x, out=b)
                        np.add(into, b, out=into)
                    else:
                        np.bitwise_count(x, out=into)

        _in_parts(scan, rows, SCAN_STEP)
        return found

    def _coarse(self, query: Vectors, mask: Bools, wanted: int) -> npt.NDArray[np.intp]:
        """The admitted rows whose sign bits differ least from the query's: the `wanted`
        nearest and every row as near as the last of them (at most twice `wanted`)."""
        distances = self._hamming(query)
        if not mask.all():
            distances[~mask] = np.iinfo(distances.dtype).max  # never a candidate
        cut = _cut(distances, wanted, _strong_count(len(query)))
        rows = np.flatnonzero(distances <= cut)
        if len(rows) > 2 * wanted:  # a crowd of ties at the cut
            rows = rows[np.argpartition(distances[rows], wanted)[:wanted]]
        return rows

    def _fine(self, query: Vectors, rows: npt.NDArray[np.intp], k: int) -> list[Hit]:
        """The `k` best of `rows` by the dot product of their int8 vectors with the query's
        (numkong's int8 kernel: 0.3 ms for 15,000 rows, where float32 numpy took 1.7). The
        rows are gathered in parts at once: each is a wait on memory, not work."""
        scale = np.float32(self.meta.scale)
        quantized = _int8(query, self.meta.scale)[None, :]
        candidates = np.empty((len(rows), self.meta.dim), np.int8)

        def gather(start: int, end: int) -> None:
            np.take(self.vectors, rows[start:end], axis=0, out=candidates[start:end])

        _in_parts(gather, len(rows), GATHER_STEP)
        products = numkong.cdist(quantized, candidates, "dot", dtype="int8", out_dtype="float32")
        scores = np.asarray(products).reshape(-1) / (scale * scale)
        ids = self.ids[rows]
        if len(scores) > k:  # the k best and every row tied with the last of them
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = np.flatnonzero(scores >= kth)
            scores, ids = scores[keep], ids[keep]
        order = np.lexsort((ids, scores))[::-1][:k]  # score, then article_id, both descending
        return list(zip(scores[order].tolist(), ids[order].tolist(), strict=True))

    def vector_of(self, article_id: int) -> Vectors | None:
        """The article's current vector (as quantized, made unit again), or None."""
        rows = np.flatnonzero((self.ids == np.uint64(article_id)) & self.live)
        if not len(rows):
            return None
        vector: Vectors = self.vectors[rows[-1]].astype(np.float32)
        norm = np.float32(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def mask(
        self,
        *,
        source_ids: Sequence[int] = (),
        id_min: int | None = None,
        id_max: int | None = None,
        ids: Sequence[int] = (),
        published_from: int | None = None,
        published_before: int | None = None,
    ) -> Bools | None:
        """Rows within these filters (None: no filter), from the row files alone."""
        parts: list[Bools] = []
        if source_ids:
            parts.append(np.isin(self.sources, np.array(sorted(set(source_ids)), np.uint64)))
        if id_min is not None:
            parts.append(self.ids >= np.uint64(id_min))
        if id_max is not None:
            parts.append(self.ids <= np.uint64(id_max))
        if ids:
            parts.append(np.isin(self.ids, np.array(sorted(set(ids)), np.uint64)))
        if published_from is not None or published_before is not None:
            dated = self.published != UNDATED
            if published_from is not None:
                dated &= self.published >= published_from
            if published_before is not None:
                dated &= self.published < published_before
            parts.append(dated)
        if not parts:
            return None
        found = parts[0]
        for part in parts[1:]:
            found = found & part
        return found

    def rows_of(self, article_ids: Sequence[int]) -> Bools:
        """Rows of these articles."""
        return np.isin(self.ids, np.array(sorted(set(article_ids)), np.uint64))

    def live_count(self) -> int:
        return int(np.count_nonzero(self.live))


def _in_parts(work: Callable[[int, int], None], total: int, step: int) -> None:
    """`work(start, end)` over [0, total) in at most SCAN_PARTS ranges of whole `step`s
    (the last may be short). The caller runs the first, then every other that no scan
    thread has started by then: when other requests keep those threads busy, a request
    waits for no one but itself."""
    parts = min(SCAN_PARTS, total // step)
    if parts <= 1:
        work(0, total)
        return
    size = -(-total // (parts * step)) * step
    ranges = [(start, min(total, start + size)) for start in range(0, total, size)]
    started = [_SCANS.submit(work, *bounds) for bounds in ranges[1:]]
    work(*ranges[0])
    running = []
    for future, bounds in zip(started, ranges[1:], strict=True):
        if future.cancel():
            work(*bounds)
        else:
            running.append(future)
    for future in running:
        future.result()


def commit_files(meta: VectorMeta) -> dict[str, int]:
    """The files of the commit `meta` describes, each with the bytes of it that commit
    holds: its row files may already hold rows added after it (a copy takes the prefix)."""
    files = {
        _file(Path(), meta.generation, column).name: meta.rows * width * np.dtype(dtype).itemsize
        for column, (dtype, width) in _widths(meta.dim).items()
    }
    if meta.live:
        files[meta.live] = meta.rows
    return files


def _map(path: Path, dtype: type[np.generic], shape: tuple[int, ...]) -> npt.NDArray[Any]:
    if shape[0] == 0:
        return np.zeros(shape, dtype)
    # A plain array over the map: results of np.memmap's own operations are memmaps too,
    # each paying its bookkeeping.
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", shape=shape))


def read_meta(folder: Path) -> VectorMeta | None:
    try:
        return VectorMeta.decode((folder / MANIFEST).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _cut(distances: Distances, wanted: int, most: int) -> int:
    """The least distance within which `wanted` rows lie (distances past `most` are rows
    never to take). A histogram of every SAMPLE_STRIDE-th row guesses it and exact counts
    settle it in a step or two: a histogram of every row took 1.4 ms at a million rows, a
    count 0.15."""
    sample = np.bincount(np.minimum(distances[::SAMPLE_STRIDE], most + 1), minlength=most + 2)
    cut = int(np.searchsorted(np.cumsum(sample) * SAMPLE_STRIDE, wanted))
    for _ in range(4):
        if np.count_nonzero(distances <= cut) < wanted:
            cut += 1
        elif cut > 0 and np.count_nonzero(distances < cut) >= wanted:
            cut -= 1
        else:
            return cut
    whole = np.bincount(np.minimum(distances, most + 1), minlength=most + 2)
    return int(np.searchsorted(np.cumsum(whole), wanted))


def _shape(rows: int, width: int) -> tuple[int, ...]:
    return (rows,) if width == 1 else (rows, width)


def load_view(folder: Path, meta: VectorMeta) -> VectorView:
    """The rows `meta` names, mapped read-only. OSError or ValueError when they are not all
    there (a damaged folder)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for column, (dtype, width) in _widths(meta.dim).items():
        arrays[column] = _map(
            _file(folder, meta.generation, column), dtype, _shape(meta.rows, width)
        )
    live = _map(folder / meta.live, np.uint8, (meta.rows,)) if meta.live else np.zeros(0, np.uint8)
    bits = tuple(arrays.pop(_bits(j)) for j in range(_words(meta.dim)))
    return VectorView(meta=meta, live=live.view(np.bool_), bits=bits, **arrays)


class VectorIndex:
    """A vector folder as a reader follows it: the newest commit, reloaded on request."""

    def __init__(self, path: Path, view: VectorView, stamp: tuple[int, int]) -> None:
        self.path = path
        self._view = view
        self._stamp = stamp

    @classmethod
    def open(cls, path: Path) -> "VectorIndex | None":
        """The folder's last commit, or None when there is none or it cannot be read."""
        if not (path / MANIFEST).exists():
            return None
        try:
            found = _last_commit(path)
        except (OSError, ValueError) as exc:
            log.warning("vector index at %s cannot be read (%s)", path, exc)
            return None
        if found is None:
            return None
        stamp, view = found
        return cls(path, view, stamp)

    def reload(self) -> None:
        """Take the folder's newest commit, if the manifest changed."""
        try:
            if _stamp(self.path) == self._stamp:
                return
            found = _last_commit(self.path)
        except (OSError, ValueError) as exc:
            log.warning("vector index at %s cannot be reloaded (%s)", self.path, exc)
            return
        if found is not None:
            self._stamp, self._view = found

    def view(self) -> VectorView:
        return self._view

    @property
    def meta(self) -> VectorMeta:
        return self._view.meta


def _last_commit(folder: Path, attempts: int = 5) -> tuple[tuple[int, int], VectorView] | None:
    """The manifest's stamp and the rows it names, mapped; None without a manifest of
    this format.

    A writer deletes the files of the commit before once the manifest names the new ones,
    so a reader that read a manifest just before a commit may find its live file gone:
    it reads the manifest again, which names files that exist."""
    for attempt in range(attempts):
        stamp = _stamp(folder)
        meta = read_meta(folder)
        if meta is None or meta.format != FORMAT:
            return None  # none yet, or of another format: the writer rebuilds it
        try:
            return stamp, load_view(folder, meta)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
    return None


def _stamp(folder: Path) -> tuple[int, int]:
    stat = (folder / MANIFEST).stat()
    return stat.st_ino, stat.st_mtime_ns


class _RowIds:
    """Every row's article_id, in row order. A load appends some 500 batches, and copying
    the whole array for each was quadratic: the array grows by doubling instead. The
    largest id is kept, so a batch of new, higher ids (a first load) is known to replace
    no row without a search."""

    def __init__(self, ids: npt.NDArray[np.uint64]) -> None:
        self._buffer = ids
        self._count = len(ids)
        self._max = int(ids.max()) if len(ids) else -1

    def __len__(self) -> int:
        return self._count

    @property
    def array(self) -> npt.NDArray[np.uint64]:
        return self._buffer[: self._count]

    def append(self, ids: npt.NDArray[np.uint64]) -> None:
        end = self._count + len(ids)
        if end > len(self._buffer):
            grown = np.empty(max(end, 2 * len(self._buffer), 1024), np.uint64)
            grown[: self._count] = self.array
            self._buffer = grown
        self._buffer[self._count : end] = ids
        self._count = end
        if len(ids):
            self._max = max(self._max, int(ids.max()))

    def rows_of(self, ids: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """The rows that hold any of `ids`."""
        if not self._count or not len(ids) or int(ids.min()) > self._max:
            return np.zeros(0, np.intp)
        return np.flatnonzero(np.isin(self.array, ids))


class VectorWriter:
    """The one writer of a folder (its process holds the folder's lock, app/search/
    vector_sync.py). Rows added or deleted are seen by readers after `commit`."""

    def __init__(self, path: Path, meta: VectorMeta, ids: npt.NDArray[np.uint64], live: bytearray):
        self.path = path
        self.meta = meta
        self._ids = _RowIds(ids)  # committed and pending
        self._live = live
        self._pending: list[dict[str, npt.NDArray[Any]]] = []
        self._pending_rows = 0
        # Rows in the files: the committed ones and any flushed since, which no manifest
        # names yet (readers map only the manifest's rows; a crash cuts them off).
        self._on_disk = meta.rows

    @classmethod
    def create(cls, path: Path, database_id: str, embedder: str, dim: int) -> "VectorWriter":
        """A new, empty folder, replacing whatever was there."""
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        meta = VectorMeta(database_id, embedder, dim, live="live-0.u8")
        for column in _widths(dim):
            _file(path, 0, column).touch()
        (path / meta.live).touch()
        _replace(path / MANIFEST, meta.encode())
        return cls(path, meta, np.zeros(0, np.uint64), bytearray())

    @classmethod
    def open_for(cls, path: Path, database_id: str, embedder: str, dim: int) -> "VectorWriter":
        """The folder if it was built from `database_id` by `embedder`, else a new one (the
        log says why). Rows past the manifest's (a crash mid-commit) are cut off."""
        meta = read_meta(path)
        if meta is not None and meta.format == 2:
            meta = _upgrade(path, meta)
        why = None
        if meta is None:
            why = "it is missing or damaged" if path.exists() else None
        elif meta.format != FORMAT:
            why = f"its format is {meta.format}, not {FORMAT}"
        elif meta.database_id != database_id:
            why = f"it was built from another database ({meta.database_id})"
        elif (meta.embedder, meta.dim) != (embedder, dim):
            why = f"it was built by another embedder ({meta.embedder})"
        if meta is None or why is not None:
            if why is not None:
                log.warning("rebuilding the vector index at %s: %s", path, why)
            return cls.create(path, database_id, embedder, dim)
        try:
            for column, (dtype, width) in _widths(dim).items():
                size = meta.rows * width * np.dtype(dtype).itemsize
                with _file(path, meta.generation, column).open("r+b") as f:
                    if f.seek(0, os.SEEK_END) < size:
                        raise ValueError(f"g{meta.generation}.{column} is short")
                    f.truncate(size)
            ids = np.fromfile(_file(path, meta.generation, "ids"), np.uint64)
            live = bytearray((path / meta.live).read_bytes())
            if len(live) != meta.rows:
                raise ValueError("the live file is short")
        except (OSError, ValueError) as exc:
            log.warning("rebuilding the vector index at %s: it is damaged (%s)", path, exc)
            return cls.create(path, database_id, embedder, dim)
        return cls(path, meta, ids, live)

    @property
    def revision(self) -> int:
        return self.meta.revision

    def _clear(self, article_ids: npt.NDArray[np.uint64]) -> None:
        for row in self._ids.rows_of(article_ids).tolist():
            self._live[row] = 0

    def add(
        self,
        article_ids: Sequence[int],
        source_ids: Sequence[int],
        published: Sequence[int],
        vectors: Vectors | Quantized,
    ) -> None:
        """The articles' new vectors (unit vectors, or as `quantize` made them with this
        folder's `meta.scale`), replacing any they had."""
        if not len(article_ids):
            return
        ids = np.array(article_ids, np.uint64)
        self.delete(ids)
        words, fine = vectors if isinstance(vectors, tuple) else quantize(vectors, self.meta.scale)
        self._pending.append(
            {
                "ids": ids,
                "sources": np.array(source_ids, np.uint64),
                "published": np.array(published, np.int64),
                "vectors": fine,
                **{_bits(j): words[:, j] for j in range(words.shape[1])},
            }
        )
        self._pending_rows += len(ids)
        self._ids.append(ids)
        self._live.extend(b"\x01" * len(ids))
        if self._pending_rows >= FLUSH_ROWS:  # a long load holds a few MB, not every vector
            self._flush()

    def delete(self, article_ids: Sequence[int] | npt.NDArray[np.uint64]) -> None:
        self._clear(np.asarray(article_ids, np.uint64))

    def _flush(self, *, durable: bool = False) -> None:
        """Append the pending rows to the files (no manifest names them yet)."""
        for column in _widths(self.meta.dim):
            with _file(self.path, self.meta.generation, column).open("ab") as f:
                for part in self._pending:
                    f.write(np.ascontiguousarray(part[column]).tobytes())
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        self._on_disk += self._pending_rows
        self._pending, self._pending_rows = [], 0

    def commit(self, revision: int) -> None:
        """Make what was added and deleted visible, with `revision` as the revision applied."""
        self._flush(durable=True)
        generation = self.meta.generation
        rows = len(self._ids)
        dead = rows - self._live.count(1)
        if dead >= max(COMPACT_MIN_DEAD, COMPACT_DEAD_SHARE * rows):
            generation, rows = self._compact()
        number = int(self.meta.live.removeprefix("live-").removesuffix(".u8") or 0) + 1
        live = f"live-{number}.u8"
        _replace(self.path / live, bytes(self._live), atomic=False)
        old = self.meta
        self.meta = replace(old, revision=revision, generation=generation, rows=rows, live=live)
        _replace(self.path / MANIFEST, self.meta.encode())
        # Readers that mapped the old files keep them until they let go (POSIX unlink).
        (self.path / old.live).unlink(missing_ok=True)
        if generation != old.generation:
            for column in _widths(old.dim):
                _file(self.path, old.generation, column).unlink(missing_ok=True)

    def _compact(self) -> tuple[int, int]:
        """Copy the live rows (all on disk, flushed) to a new generation, a slice at a time."""
        old, new = self.meta.generation, self.meta.generation + 1
        keep = np.frombuffer(bytes(self._live), np.uint8).astype(bool)
        rows = self._on_disk
        for column, (dtype, width) in _widths(self.meta.dim).items():
            values = _map(_file(self.path, old, column), dtype, _shape(rows, width))
            with _file(self.path, new, column).open("wb") as f:
                for start in range(0, rows, FLUSH_ROWS):
                    end = start + FLUSH_ROWS
                    f.write(np.ascontiguousarray(values[start:end][keep[start:end]]).tobytes())
                f.flush()
                os.fsync(f.fileno())
        self._ids = _RowIds(self._ids.array[keep])
        self._live = bytearray(b"\x01" * len(self._ids))
        self._on_disk = len(self._ids)
        return new, len(self._ids)


def _upgrade(path: Path, meta: VectorMeta) -> VectorMeta | None:
    """A format-2 folder (sign bits row by row in g<G>.codes) in this format, its vectors
    kept: a million rows take seconds, where embedding them again takes minutes. None when
    it cannot be read (the caller rebuilds it)."""
    old = _file(path, meta.generation, "codes")
    width = -(-meta.dim // 8)  # np.packbits rounds up to whole bytes
    try:
        codes = np.fromfile(old, np.uint8, count=meta.rows * width).reshape(meta.rows, width)
        words = _as_words(codes)
        for j in range(words.shape[1]):
            _replace(_file(path, meta.generation, _bits(j)), words[:, j].tobytes())
    except (OSError, ValueError) as exc:
        log.warning("the vector index at %s cannot be upgraded (%s)", path, exc)
        return None
    upgraded = replace(meta, format=FORMAT)
    _replace(path / MANIFEST, upgraded.encode())
    old.unlink(missing_ok=True)
    log.info("upgraded the vector index at %s to format %d", path, FORMAT)
    return upgraded


def _replace(path: Path, data: bytes, *, atomic: bool = True) -> None:
    """Write `data` to `path`, durably; by a rename when `atomic`."""
    target = path.with_name(path.name + ".tmp") if atomic else path
    with target.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if atomic:
        os.replace(target, path)
