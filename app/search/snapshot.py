"""A consistent copy of an index folder, taken while its follower writes it.

Tantivy never changes a file once written. A commit writes new segment files, then
replaces meta.json (atomically), which names the segments of that commit; merges and
garbage collection later delete the files no commit needs. So one meta.json and the files
of the segments it names are that commit whole: its articles and its meta document
(database id, schema version, revision: app/search/index.py). The writer may delete a
named file before we open it; the copy then starts again from the newer meta.json. A file
once opened reads to its end even if it is deleted meanwhile.

The vector folder beside the index (app/search/vectors.py), when there is one, is copied
beside the target the same way: its manifest names a generation of row files, which are
only appended to, and a live file, never changed once written; the copy takes the rows
the manifest counts and that live file, and starts again from a newer manifest when a
commit deleted them meanwhile. The two copies may be of different revisions: each index
records its own, and a follower applies the changes after it.

Each copy is made in a hidden folder beside its target and renamed into place: a snapshot
is whole or absent. A host whose index folder starts as a copy opens it as its own
(`SearchIndex.open_for`: kept when the database id and schema version are its database's,
rebuilt otherwise; `VectorWriter.open_for` likewise) and its followers apply the changes
after the copies' revisions.
"""

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import orjson

from app.search.index import IndexMeta, SearchIndex
from app.search.vectors import (
    FORMAT,
    MANIFEST,
    VectorMeta,
    VectorView,
    commit_files,
    load_view,
    vectors_path,
)

# Every segment has these files (tantivy's segment components); deletes add one more.
SEGMENT_FILES = ("idx", "pos", "term", "store", "fast", "fieldnorm")
T = TypeVar("T")
ATTEMPTS = 50  # commits that may land while one copy is made, before we give up


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    meta: IndexMeta
    files: int
    size_bytes: int
    vectors: VectorMeta | None  # the vector folder's copy, when the host has one


class SnapshotError(Exception):
    """No snapshot was made: the reason says why."""


def take_snapshot(source: Path, target: Path) -> Snapshot:
    """Copy the last commit of the index in `source` to the new folder `target`, and that
    of the vector folder beside `source`, if any, beside `target`."""
    for folder in (target, vectors_path(target)):
        if folder.exists():
            raise SnapshotError(f"{folder} exists: name a new folder")
    if not (source / "meta.json").exists():
        raise SnapshotError(f"no search index at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    made = _copy_index(source, target)
    if not (vectors_path(source) / MANIFEST).exists():
        return made
    try:
        vectors = _copy_vectors(vectors_path(source), vectors_path(target))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # whole or absent
        raise
    return replace(made, vectors=vectors)


def _copied(target: Path, what: str, copy: Callable[[Path], T | None]) -> T:
    """Run `copy` into a hidden folder beside `target` until it copies one commit whole (it
    answers None when a newer commit deleted a file of its commit meanwhile), then rename
    the folder into place. `copy` checks what it made before it answers."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        for _ in range(ATTEMPTS):
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            made = copy(partial)
            if made is not None:
                partial.rename(target)
                return made
        raise SnapshotError(f"{what} changed faster than it could be copied")
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _copy_index(source: Path, target: Path) -> Snapshot:
    def copy(partial: Path) -> Snapshot | None:
        meta_json = (source / "meta.json").read_bytes()
        try:
            names = _commit_files(source, meta_json)
            for name in names:
                shutil.copyfile(source / name, partial / name)
        except FileNotFoundError:
            return None  # a newer commit let the writer delete a file of this one
        (partial / "meta.json").write_bytes(meta_json)
        # Tantivy's list of the files it manages: what its garbage collection may delete.
        managed = orjson.dumps(sorted([*names, "meta.json"]))
        (partial / ".managed.json").write_bytes(managed)
        return _checked(partial, target, len(names) + 1)

    return _copied(target, f"the index at {source}", copy)


def _commit_files(source: Path, meta_json: bytes) -> list[str]:
    """The files of the segments a meta.json names; FileNotFoundError when one is gone."""
    present = set(os.listdir(source))
    names: list[str] = []
    for segment in orjson.loads(meta_json)["segments"]:
        stem = str(segment["segment_id"]).replace("-", "")
        wanted = [f"{stem}.{ext}" for ext in SEGMENT_FILES]
        deletes = segment.get("deletes")
        if deletes:
            wanted.append(f"{stem}.{deletes['opstamp']}.del")
        missing = [name for name in wanted if name not in present]
        if missing:
            raise FileNotFoundError(missing[0])
        names.extend(wanted)
    return names


def _checked(partial: Path, target: Path, files: int) -> Snapshot:
    """Check that the copy opens as an index with its meta document."""
    index = SearchIndex.open(partial)
    meta = index.meta() if index is not None else None
    if index is None or meta is None:
        raise SnapshotError("the copy does not open as a search index")
    size_bytes = index.size_bytes()
    del index  # let go of its files before the rename
    return Snapshot(target, meta, files, size_bytes, None)


def _copy_vectors(source: Path, target: Path) -> VectorMeta:
    """Copy the last commit of the vector folder `source` to the new folder `target`."""

    def copy(partial: Path) -> VectorMeta | None:
        manifest = (source / MANIFEST).read_bytes()
        try:
            meta = VectorMeta.decode(manifest)
            if meta.format != FORMAT:  # its files are not the ones this version names
                raise SnapshotError(
                    f"the vector index at {source} is of format {meta.format}, not "
                    f"{FORMAT}: serve it with this version once (it upgrades it), "
                    "then take the snapshot"
                )
            for name, size in commit_files(meta).items():
                _copy_prefix(source / name, partial / name, size)
        except FileNotFoundError:
            return None  # a newer commit deleted a file of this one
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"the vector index at {source} is damaged: {exc}") from None
        (partial / MANIFEST).write_bytes(manifest)
        view: VectorView = load_view(partial, meta)  # checks that the copy maps whole
        del view  # let go of the mapped files before the rename
        return meta

    return _copied(target, f"the vector index at {source}", copy)


def _copy_prefix(source: Path, target: Path, size: int) -> None:
    """The first `size` bytes of `source` to `target`; ValueError when it holds fewer."""
    with source.open("rb") as read, target.open("wb") as write:
        left = size
        while left:
            chunk = read.read(min(left, 1 << 20))
            if not chunk:
                raise ValueError(f"{source} holds fewer bytes than its manifest counts")
            write.write(chunk)
            left -= len(chunk)
