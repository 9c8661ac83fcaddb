"""A consistent copy of an index folder, taken while its follower writes it.

Tantivy never changes a file once written. A commit writes new segment files, then
replaces meta.json (atomically), which names the segments of that commit; merges and
garbage collection later delete the files no commit needs. So one meta.json and the files
of the segments it names are that commit whole: its articles and its meta document
(database id, schema version, revision: app/search/index.py). The writer may delete a
named file before we open it; the copy then starts again from the newer meta.json. A file
once opened reads to its end even if it is deleted meanwhile.

The copy is made in a hidden folder beside the target and renamed into place: a snapshot
is whole or absent. A host whose index folder starts as a copy opens it as its own
(`SearchIndex.open_for`: kept when the database id and schema version are its database's,
rebuilt otherwise) and its follower applies the changes after the copy's revision.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson

from app.search.index import IndexMeta, SearchIndex

# Every segment has these files (tantivy's segment components); deletes add one more.
SEGMENT_FILES = ("idx", "pos", "term", "store", "fast", "fieldnorm")
ATTEMPTS = 50  # commits that may land while one copy is made, before we give up


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    meta: IndexMeta
    files: int
    size_bytes: int


class SnapshotError(Exception):
    """No snapshot was made: the reason says why."""


def take_snapshot(source: Path, target: Path) -> Snapshot:
    """Copy the last commit of the index in `source` to the new folder `target`."""
    if target.exists():
        raise SnapshotError(f"{target} exists: name a new folder")
    if not (source / "meta.json").exists():
        raise SnapshotError(f"no search index at {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        for _ in range(ATTEMPTS):
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            meta_json = (source / "meta.json").read_bytes()
            try:
                names = _commit_files(source, meta_json)
                for name in names:
                    shutil.copyfile(source / name, partial / name)
            except FileNotFoundError:
                continue  # a newer commit let the writer delete a file of this one
            (partial / "meta.json").write_bytes(meta_json)
            # Tantivy's list of the files it manages: what its garbage collection may delete.
            managed = orjson.dumps(sorted([*names, "meta.json"]))
            (partial / ".managed.json").write_bytes(managed)
            return _finish(partial, target, len(names) + 1)
        raise SnapshotError(f"the index at {source} changed faster than it could be copied")
    finally:
        shutil.rmtree(partial, ignore_errors=True)


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


def _finish(partial: Path, target: Path, files: int) -> Snapshot:
    """Check that the copy opens as an index with its meta document, and move it in place."""
    index = SearchIndex.open(partial)
    meta = index.meta() if index is not None else None
    if index is None or meta is None:
        raise SnapshotError("the copy does not open as a search index")
    size_bytes = index.size_bytes()
    del index  # let go of its files before the rename
    partial.rename(target)
    return Snapshot(target, meta, files, size_bytes)
