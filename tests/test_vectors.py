"""The vector folder on its own: what a commit shows readers, what a crash leaves, how
compaction keeps answers, and that the two-pass search keeps to its filter and finds what
an exact search finds."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from app.search import vectors as vector_files
from app.search.vectors import VectorIndex, VectorWriter

DIM = 256
EMBEDDER = "test/clusters/256"


def clustered(n: int, seed: int = 0, clusters: int = 40) -> npt.NDArray[np.float32]:
    """Unit vectors around a few centres, as documents about a few subjects are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    found = centres[rng.integers(0, clusters, n)] + 0.8 * rng.standard_normal((n, DIM))
    unit: npt.NDArray[np.float32] = found.astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return unit


def filled(path: Path, n: int, seed: int = 0) -> tuple[VectorWriter, npt.NDArray[np.float32]]:
    writer = VectorWriter.create(path, "db-1", EMBEDDER, DIM)
    vectors = clustered(n, seed)
    ids = list(range(1, n + 1))
    writer.add(ids, [1 + i % 7 for i in ids], [i * 1_000_000 for i in ids], vectors)
    writer.commit(revision=n)
    return writer, vectors


def test_a_reader_keeps_its_commit_until_it_reloads(tmp_path: Path) -> None:
    writer, _ = filled(tmp_path / "v", 100)
    reader = VectorIndex.open(tmp_path / "v")
    assert reader is not None
    view = reader.view()
    writer.add([101], [1], [0], clustered(1, seed=9))
    writer.delete([5])
    writer.commit(revision=102)
    assert view.live_count() == 100  # the request that took this view sees one commit
    assert view.vector_of(5) is not None
    reader.reload()
    assert reader.view().live_count() == 100  # one added, one deleted
    assert reader.view().vector_of(5) is None
    assert reader.view().revision == 102


def test_rows_past_the_manifest_are_cut_off_when_the_writer_opens(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    _, vectors = filled(folder, 50)
    before = VectorIndex.open(folder)
    assert before is not None
    expected = before.view().nearest(vectors[3], 10)
    for column in ("ids", "bits0", "vectors"):  # a crash mid-commit left half-written rows
        with (folder / f"g0.{column}").open("ab") as f:
            f.write(b"\x07" * 100)
    writer = VectorWriter.open_for(folder, "db-1", EMBEDDER, DIM)
    assert writer.revision == 50
    writer.add([51], [1], [0], clustered(1, seed=3))
    writer.commit(revision=51)
    after = VectorIndex.open(folder)
    assert after is not None
    assert after.view().live_count() == 51
    assert after.view().nearest(vectors[3], 10) == expected


def test_another_database_or_embedder_starts_the_folder_afresh(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    filled(folder, 20)
    assert VectorWriter.open_for(folder, "db-1", EMBEDDER, DIM).meta.rows == 20
    assert VectorWriter.open_for(folder, "db-2", EMBEDDER, DIM).meta.rows == 0
    filled(folder, 20)
    assert VectorWriter.open_for(folder, "db-1", "other/model/64", 64).meta.rows == 0


def test_compaction_drops_dead_rows_and_keeps_every_answer(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    n = vector_files.COMPACT_MIN_DEAD + 2_000
    writer, vectors = filled(folder, n)
    queries = clustered(5, seed=7)
    before = VectorIndex.open(folder)
    assert before is not None
    expected = [before.view().nearest(q, 10) for q in queries]
    ids = list(range(1, n + 1))
    writer.add(ids, [1 + i % 7 for i in ids], [i * 1_000_000 for i in ids], vectors)
    writer.commit(revision=2 * n)  # every row replaced by the same vector: n dead rows
    after = VectorIndex.open(folder)
    assert after is not None
    assert after.meta.generation == 1
    assert after.meta.rows == n
    assert not (folder / "g0.vectors").exists()
    assert [after.view().nearest(q, 10) for q in queries] == expected


def test_the_two_passes_keep_to_the_filter_and_find_what_exact_search_finds(
    tmp_path: Path,
) -> None:
    n = 5 * vector_files.CANDIDATES  # enough rows for the coarse pass to run
    _, vectors = filled(tmp_path / "v", n)
    index = VectorIndex.open(tmp_path / "v")
    assert index is not None
    view = index.view()
    allowed = view.mask(source_ids=[2, 3, 5], published_from=2_000_000_000)
    assert allowed is not None
    admitted = np.flatnonzero(allowed)
    assert len(admitted) > vector_files.CANDIDATES
    recalls = []
    for q in clustered(30, seed=11):
        hits = view.nearest(q, 10, allowed)
        assert len(hits) == 10
        rows = [article_id - 1 for _, article_id in hits]
        assert all(allowed[r] for r in rows)
        exact = admitted[np.argsort(-(vectors[admitted] @ q))[:10]]
        recalls.append(len(set(rows) & set(exact.tolist())) / 10)
    assert np.mean(recalls) >= 0.95
    few = view.mask(ids=[3, 9, 27])
    assert few is not None
    assert sorted(i for _, i in view.nearest(vectors[0], 10, few)) == [3, 9, 27]


def test_rows_flushed_before_a_commit_stay_unseen_and_a_crash_drops_them(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    writer, _ = filled(folder, 10)
    n = vector_files.FLUSH_ROWS + 5  # past the flush size: they go to the files at once
    writer.add(list(range(100, 100 + n)), [1] * n, [0] * n, clustered(n, seed=5))
    assert (folder / "g0.ids").stat().st_size == (10 + n) * 8
    reader = VectorIndex.open(folder)
    assert reader is not None
    assert reader.view().live_count() == 10  # no manifest names them
    reopened = VectorWriter.open_for(folder, "db-1", EMBEDDER, DIM)  # as after a crash
    assert reopened.meta.rows == 10
    assert (folder / "g0.ids").stat().st_size == 10 * 8


def test_a_folder_of_the_format_before_is_upgraded_in_place_not_embedded_again(
    tmp_path: Path,
) -> None:
    """Format 2 kept each row's sign bits together (g<G>.codes); the writer rewrites them as
    word columns and keeps every vector."""
    folder = tmp_path / "v"
    n = 5 * vector_files.CANDIDATES
    _, vectors = filled(folder, n)
    current = VectorIndex.open(folder)
    assert current is not None
    queries = clustered(5, seed=4)
    expected = [current.view().nearest(q, 10) for q in queries]
    words = len(current.view().bits)
    codes = np.packbits(vectors > 0, axis=1)  # what format 2 wrote
    (folder / "g0.codes").write_bytes(codes.tobytes() + b"\x07" * 32)  # and a torn row
    for j in range(words):
        (folder / f"g0.bits{j}").unlink()
    meta = orjson.loads((folder / "manifest.json").read_bytes())
    (folder / "manifest.json").write_bytes(orjson.dumps({**meta, "format": 2}))
    assert VectorIndex.open(folder) is None  # a reader waits for the writer

    writer = VectorWriter.open_for(folder, "db-1", EMBEDDER, DIM)

    assert writer.meta.rows == n  # kept, not rebuilt
    assert not (folder / "g0.codes").exists()
    upgraded = VectorIndex.open(folder)
    assert upgraded is not None
    assert upgraded.meta.format == vector_files.FORMAT
    assert [upgraded.view().nearest(q, 10) for q in queries] == expected


def test_the_coarse_cut_does_not_depend_on_the_order_rows_were_written_in(tmp_path: Path) -> None:
    """Rows written in a repeating order (a feed's sources in turn) must not sway which
    rows the coarse pass keeps: the same rows in another order give the same answers."""
    n = 8 * vector_files.CANDIDATES
    rng = np.random.default_rng(3)
    vectors = clustered(n, seed=2, clusters=16)
    ids = np.arange(1, n + 1)
    answers: list[list[list[tuple[float, int]]]] = []
    for order in (np.argsort(ids % 16, kind="stable"), rng.permutation(n)):
        writer = VectorWriter.create(tmp_path / f"v{len(answers)}", "db-1", EMBEDDER, DIM)
        chosen = ids[order].tolist()
        writer.add(chosen, [1] * n, [0] * n, vectors[order])
        writer.commit(revision=n)
        index = VectorIndex.open(writer.path)
        assert index is not None
        answers.append([index.view().nearest(q, 50) for q in clustered(10, seed=8)])
    assert answers[0] == answers[1]


def test_an_article_added_again_has_one_live_row_whatever_order_its_ids_come_in(
    tmp_path: Path,
) -> None:
    """The writer finds an article's old row among every row it holds, committed or not:
    in batches of new, higher ids (which it knows replace nothing), in lower ones, and past
    the point where its list of ids grows."""
    folder = tmp_path / "v"
    filled(folder, 50)  # ids 1..50, committed
    reopened = VectorWriter.open_for(folder, "db-1", EMBEDDER, DIM)  # reads the ids back
    batches = [list(range(100 + i * 700, 800 + i * 700)) for i in range(3)]  # 2,100 new
    batches += [[7, 3_000], [150, 2_000], [5_000, 1]]  # some seen before, committed or not
    newest: dict[int, npt.NDArray[np.float32]] = {}
    for seed, ids in enumerate(batches, start=1):
        vectors = clustered(len(ids), seed=seed)
        reopened.add(ids, [1] * len(ids), [0] * len(ids), vectors)
        newest.update(zip(ids, vectors, strict=True))
    reopened.commit(revision=99)
    index = VectorIndex.open(folder)
    assert index is not None
    view = index.view()
    assert view.live_count() == 50 + 2_100 + 2  # of the last three batches, 3_000 and 5_000 are new
    for article_id in (1, 7, 150, 2_000, 5_000):
        found = view.vector_of(article_id)
        assert found is not None
        assert float(found @ newest[article_id]) > 0.99  # the last vector added, not the first
    assert len(np.flatnonzero(view.ids == np.uint64(150))) == 2  # its old row stays, dead


@pytest.mark.parametrize("parts", [1, 3])
def test_the_coarse_pass_counts_the_same_bits_in_blocks_as_over_whole_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    """The Hamming distances come a block of rows at a time (the last one short), the
    blocks and the fine pass's gather shared among threads: each distance is the count of
    sign bits that differ among the query's strong half of dimensions (its largest
    components), and the nearest rows depend on neither blocks nor threads."""
    _, vectors = filled(tmp_path / "v", 10_000)
    index = VectorIndex.open(tmp_path / "v")
    assert index is not None
    view = index.view()
    queries = clustered(4, seed=11)
    monkeypatch.setattr(vector_files, "SCAN_PARTS", 1)
    whole = [view.nearest(q, 10) for q in queries]
    monkeypatch.setattr(vector_files, "HAMMING_BLOCK", 999)  # 11 blocks, the last of 10 rows
    monkeypatch.setattr(vector_files, "SCAN_STEP", 1_998)  # parts of two blocks at least
    monkeypatch.setattr(vector_files, "SCAN_PARTS", parts)
    monkeypatch.setattr(vector_files, "GATHER_STEP", 100)
    signs = vectors > 0
    for query, expected in zip(queries, whole, strict=True):
        strong = np.argsort(-np.abs(query))[: DIM // 2]
        differing = np.count_nonzero(signs[:, strong] != (query[strong] > 0), axis=1)
        assert (view._hamming(query) == differing).all()
        assert view.nearest(query, 10) == expected


@pytest.mark.parametrize("dim", [3, 508, 510, 768])
def test_the_coarse_distances_hold_every_count_of_any_dimension(tmp_path: Path, dim: int) -> None:
    """Up to 508 dimensions a distance (at most 254 strong bits) fits a byte beside the
    never-a-candidate mark; past that, two. Rows as far as can be, every strong sign
    opposed, count each strong bit, and a filter still keeps the rows it refuses out."""
    rng = np.random.default_rng(dim)
    query = rng.standard_normal(dim).astype(np.float32)
    query /= np.linalg.norm(query)
    n = 3 * vector_files.EXACT_BELOW  # a filter admitting half still takes the coarse pass
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    rows[:3] = -query  # every sign opposed
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    writer = VectorWriter.create(tmp_path / "v", "db-1", f"test/random/{dim}", dim)
    writer.add(list(range(1, n + 1)), [1 + i % 2 for i in range(n)], [0] * n, rows)
    writer.commit(revision=n)
    index = VectorIndex.open(tmp_path / "v")
    assert index is not None
    view = index.view()
    strong = np.argsort(-np.abs(query))[: max(1, dim // 2)]
    distances = view._hamming(query)
    expected = np.count_nonzero((rows[:, strong] > 0) != (query[strong] > 0), axis=1)
    assert (distances == expected).all()
    assert distances[0] == len(strong)
    assert np.iinfo(distances.dtype).max > len(strong)
    allowed = view.mask(source_ids=[2])
    hits = view.nearest(query, 10, allowed)
    assert len(hits) == 10
    assert all(article_id % 2 == 0 for _, article_id in hits)  # source 2: the even ids


def test_a_scan_in_parts_covers_each_row_once_and_never_waits_on_busy_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parts tile the rows in whole steps; when the scan threads are busy with other
    requests, the caller runs every part itself rather than queueing behind them."""
    monkeypatch.setattr(vector_files, "SCAN_PARTS", 3)
    for total, step in [(10, 3), (1000, 7), (5, 5), (4, 5), (0, 1), (64, 16)]:
        seen: list[tuple[int, int]] = []
        vector_files._in_parts(lambda a, b: seen.append((a, b)), total, step)  # noqa: B023
        starts, ends = zip(*sorted(seen), strict=True)
        assert list(starts) == [0, *ends[:-1]]  # contiguous, none twice
        assert ends[-1] == total
        assert all(start % step == 0 for start in starts)
        assert len(seen) <= 3

    busy = threading.Event()
    blocked = ThreadPoolExecutor(1)
    blocked.submit(busy.wait)
    monkeypatch.setattr(vector_files, "_SCANS", blocked)
    runners: list[int] = []
    caller = threading.Thread(
        target=vector_files._in_parts,
        args=(lambda a, b: runners.append(threading.get_ident()), 300, 100),
    )
    caller.start()
    caller.join(timeout=10)
    busy.set()
    blocked.shutdown()
    assert not caller.is_alive(), "the caller waited for a busy scan thread"
    assert runners == [caller.ident] * 3
