"""`corpus index snapshot`: a consistent copy of a host's search index, taken while the host
serves and follows writes, from which a new host starts: it keeps the copy and applies
only the changes after the copy's revision. A copy of another database's index, or of
another index schema, is rebuilt instead, as any foreign index is."""

import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.db import make_engine
from app.search import sync
from app.search.index import SCHEMA_VERSION, SearchIndex, index_path
from app.search.vectors import VectorIndex, vectors_path
from app.settings import Settings
from app.takedowns import delete_articles
from tests.factories import add_articles, make_client, record, write_articles

pytestmark = pytest.mark.anyio


def snapshot(database_url: str, target: Path, *options: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["index", "snapshot", str(target), "--json", "--database-url", database_url, *options]
    )
    assert result.exit_code == 0, result.output
    made: dict[str, Any] = orjson.loads(result.stdout)
    return made


async def test_snapshots_taken_while_the_host_follows_writes_each_hold_one_commit(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    add_articles(engine, [record(i) for i in range(1, 201)])
    stop = threading.Event()

    def write() -> None:  # inserts only: after revision R the database holds R articles
        first = 201
        while not stop.is_set():
            add_articles(
                engine, [record(i, content=f"later {i}") for i in range(first, first + 20)]
            )
            first += 20

    copies = [tmp_path / f"copy-{n}" for n in range(12)]
    async with make_client(database_url):  # the host, whose follower commits as writes land
        writer = threading.Thread(target=write)
        writer.start()
        try:
            for copy in copies:
                await anyio.sleep(0.03)
                snapshot(database_url, copy)
        finally:
            stop.set()
            writer.join()
    engine.dispose()
    revisions = []
    for copy in copies:
        index = SearchIndex.open(copy)
        assert index is not None
        meta = index.meta()
        assert meta is not None
        assert index.searcher().num_docs - 1 == meta.revision  # less the meta document
        revisions.append(meta.revision)
        vectors = VectorIndex.open(vectors_path(copy))  # of its own commit, maybe another
        assert vectors is not None
        assert vectors.view().live_count() == vectors.meta.revision > 0
    assert revisions == sorted(revisions)
    assert len(set(revisions)) > 1, "the index never moved while copies were taken"


async def test_a_host_started_from_a_snapshot_applies_only_the_changes_after_it(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(Settings(database_url=database_url), pooled=False)
    add_articles(
        engine, [record(i, title=f"Old {i}", content="an old heron") for i in range(1, 51)]
    )
    async with make_client(database_url):  # the first host builds its index
        made = snapshot(database_url, tmp_path / "copy")
    assert made["revision"] == 50
    # The vector index beside it is copied too, as of its own last commit.
    assert made["vectors"] == {"path": str(tmp_path / "copy.vectors"), "revision": 50}
    add_articles(engine, [record(i, title=f"New {i}", content="a newt") for i in range(51, 61)])
    delete_articles(engine, [1])
    engine.dispose()
    folder = tmp_path / "new-host"
    shutil.copytree(tmp_path / "copy", folder)
    shutil.copytree(tmp_path / "copy.vectors", tmp_path / "new-host.vectors")
    capsys.readouterr()
    async with make_client(database_url, index_dir=str(folder)) as client:
        newts = (await client.get("/v1/articles", params={"q": "newt", "count": "exact"})).json()
        herons = (await client.get("/v1/articles", params={"q": "heron", "count": "exact"})).json()
        params: dict[str, str | int] = {"q": "newt", "mode": "semantic", "limit": 100}
        meant = await client.get("/v1/articles", params=params)
        ready = (await client.get("/readyz")).json()
    assert (newts["total"], herons["total"]) == (10, 49)
    for index in (ready["search_index"], ready["vector_index"]):
        assert index["revision"] == index["database_revision"] == 61
    # Search by meaning answers from the copy and what followed: the newts, not article 1.
    found = [item["article_id"] for item in meant.json()["items"]]
    assert sorted(found) == list(range(2, 61))
    assert set(found[:10]) == set(range(51, 61))
    assert "rebuilding" not in capsys.readouterr().err


@pytest.mark.parametrize("foreign", ["another database", "another schema version"])
async def test_a_snapshot_of_another_database_or_schema_is_rebuilt(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], foreign: str
) -> None:
    other = tmp_path / "other.db"
    if foreign == "another database":
        source_url = f"sqlite:///{other}"
        CliRunner().invoke(cli, ["migrate", "--database-url", source_url])
    else:
        source_url = database_url
    write_articles(source_url, [record(1, content="an otter")])
    async with make_client(source_url, index_dir=str(tmp_path / "source")):
        snapshot(source_url, tmp_path / "copy", "--index-dir", str(tmp_path / "source"))
    if foreign == "another schema version":
        stamp_schema_version(tmp_path / "copy", SCHEMA_VERSION + 1)
    write_articles(database_url, [record(2, content="a stoat")])
    capsys.readouterr()
    async with make_client(database_url, index_dir=str(tmp_path / "copy")) as client:
        stoats = (await client.get("/v1/articles", params={"q": "stoat"})).json()
        otters = (await client.get("/v1/articles", params={"q": "otter"})).json()
    assert [item["article_id"] for item in stoats["items"]] == [2]
    # Rebuilt from this host's database: the other database's otter is gone with the copy.
    expected = [] if foreign == "another database" else [1]
    assert [item["article_id"] for item in otters["items"]] == expected
    why = "built from another database" if foreign == "another database" else "schema version"
    log = capsys.readouterr().err
    assert "rebuilding the search index" in log
    assert why in log


def stamp_schema_version(folder: Path, version: int) -> None:
    """Rewrite the index's meta document as an index of another schema would have it."""
    index = SearchIndex.open(folder)
    assert index is not None
    meta = index.meta()
    assert meta is not None
    writer = index.writer()
    sync._commit(writer, replace(meta, schema_version=version))
    writer.wait_merging_threads()


def test_a_snapshot_never_overwrites_and_needs_an_index(database_url: str, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    runner = CliRunner()
    for target, why in (
        (taken, "exists: name a new folder"),
        (tmp_path / "new", "no search index"),
    ):
        result = runner.invoke(
            cli,
            [
                "index",
                "snapshot",
                str(target),
                "--database-url",
                database_url,
                "--index-dir",
                str(tmp_path / "none"),
            ],
        )
        assert result.exit_code == 2
        assert why in result.stderr
    assert list(taken.iterdir()) == []
    assert not (tmp_path / "new").exists()


async def test_a_vector_index_of_the_format_before_is_refused_and_nothing_is_left(
    database_url: str, tmp_path: Path
) -> None:
    """A host of an older version serving the folder keeps its files in the old layout: the
    snapshot says so rather than failing on a file this version names and that one lacks."""
    write_articles(database_url, [record(i) for i in range(1, 21)])
    async with make_client(database_url):
        pass  # the host builds both indexes
    manifest = vectors_path(index_path(Settings(database_url=database_url))) / "manifest.json"
    meta = orjson.loads(manifest.read_bytes())
    manifest.write_bytes(orjson.dumps({**meta, "format": 2}))
    target = tmp_path / "copy"
    result = CliRunner().invoke(
        cli, ["index", "snapshot", str(target), "--database-url", database_url]
    )
    assert result.exit_code == 2, result.output
    assert "is of format 2" in result.stderr
    assert not target.exists()
    assert not vectors_path(target).exists()
