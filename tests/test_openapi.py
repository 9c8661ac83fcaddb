"""The OpenAPI contract: its shape, the committed copy, and SDKs generated from it.

A Python client (openapi-python-client) is generated from a live server's document,
installed and driven against that server; TypeScript types (openapi-typescript) are
generated and a small client is type-checked with `tsc`. Missing tools fail, never skip.
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.openapi import render
from app.main import create_app
from tests.factories import CORPUS_AUTHORS, CORPUS_IDS, CORPUS_SOURCES, corpus_date
from tests.live import ROOT, LiveServer, serve, wait_for_indexes
from tests.test_keys import new_key

COMMITTED = ROOT / "openapi.json"
TS_DIR = ROOT / "tests" / "clients" / "ts"
BIN = Path(sys.executable).parent
ALL_IDS = sorted([*CORPUS_IDS, 166812], reverse=True)
OPERATIONS = {
    ("get", "/v1/articles"): "list_articles",
    ("get", "/v1/articles/{article_id}"): "get_article",
    ("get", "/v1/sources"): "list_sources",
    ("get", "/v1/sources/{source_id}"): "get_source",
    ("get", "/v1/sources/{source_id}/articles"): "list_source_articles",
    ("get", "/healthz"): "get_health",
    ("get", "/readyz"): "get_readiness",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_document_is_openapi_3_1_with_readable_operation_ids(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    found = {(m, p): op["operationId"] for m, p, op in operations(document)}
    for key, operation_id in OPERATIONS.items():
        assert found.get(key) == operation_id, key
    assert len(set(found.values())) == len(found)


def test_response_models_have_our_names(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])
    assert {"ArticlePage", "ArticleSummary", "Article", "Source", "SourcePage", "Problem"} <= names
    assert not names & {"HTTPValidationError", "ValidationError"}
    refs = {
        (p, op["responses"]["200"]["content"]["application/json"]["schema"].get("$ref"))
        for m, p, op in operations(document)
        if "application/json" in op["responses"]["200"].get("content", {})
    }
    assert ("/v1/articles", "#/components/schemas/ArticlePage") in refs
    assert ("/v1/articles/{article_id}", "#/components/schemas/Article") in refs
    assert ("/v1/sources", "#/components/schemas/SourcePage") in refs


def test_every_error_response_is_a_problem(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
        streamed = "application/json" not in responses["200"].get("content", {})
        assert ("304" in responses) is not streamed, (method, path)
        assert {"414", "431"} <= set(responses), (method, path)
        if path != "/healthz":
            assert "Retry-After" in responses["503"]["headers"], (method, path)
        if path.startswith("/v1/"):
            assert {"404", "422"} <= set(responses), (method, path)


def test_every_parameter_has_a_description_and_an_example(document: dict[str, Any]) -> None:
    missing = [
        (path, parameter["name"], field)
        for _, path, operation in operations(document)
        for parameter in operation.get("parameters", [])
        for field, present in (
            ("description", bool(parameter.get("description"))),
            (
                "example",
                "example" in parameter
                or "examples" in parameter
                or "examples" in parameter["schema"]
                or "example" in parameter["schema"],
            ),
        )
        if not present
    ]
    assert missing == []


def test_committed_openapi_json_matches_the_code(document: dict[str, Any]) -> None:
    """A changed contract must be a reviewed diff of openapi.json."""
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    assert committed == render(create_app()), (
        "openapi.json differs from the code's OpenAPI document: run `make openapi` and "
        "review the diff (it is the public contract)."
    )


def test_api_is_read_only(document: dict[str, Any]) -> None:
    assert {method for method, _, _ in operations(document)} == {"get"}


# --- generated Python client ------------------------------------------------------------

USE_CLIENT = r"""
import json, sys
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from article_corpus_client import AuthenticatedClient
from article_corpus_client.api.articles import get_article, list_articles, list_similar_articles
from article_corpus_client.api.sources import get_source, list_source_articles, list_sources
from article_corpus_client.models import (
    Article, ArticlePage, Problem, SearchMode, Sort, Source, SourcePage
)
from article_corpus_client.types import UNSET, Unset


def cursor_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["cursor"][0]


def walk(client: AuthenticatedClient, source_id: int | None = None) -> list[int]:
    ids: list[int] = []
    cursor: str | Unset = UNSET
    sources: list[int] | Unset = [source_id] if source_id is not None else UNSET
    while True:
        page = list_articles.sync(client=client, limit=17, cursor=cursor, source_id=sources)
        assert isinstance(page, ArticlePage), page
        # Every summary key is optional (`fields=` can leave any out): the types say so.
        ids.extend(item.article_id for item in page.items if isinstance(item.article_id, int))
        if page.next_ is None:
            return ids
        cursor = cursor_of(page.next_)


# The document declares the key schemes, so the SDK sends the key (Authorization: Bearer).
base, key = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
wrong = AuthenticatedClient(base_url=base, token="ck_wrong_key")
keyless = get_article.sync_detailed(client=wrong, article_id=166812)
assert isinstance(keyless.parsed, Problem), keyless
article = get_article.sync(client=client, article_id=166812)
assert isinstance(article, Article), article
missing = get_article.sync_detailed(client=client, article_id=1)
assert isinstance(missing.parsed, Problem), missing
sources = list_sources.sync(client=client)
assert isinstance(sources, SourcePage), sources
source = get_source.sync(client=client, source_id=2)
assert isinstance(source, Source), source
first = list_source_articles.sync(client=client, source_id=5, limit=3)
assert isinstance(first, ArticlePage), first
# The time axis: a date range, newest first by date, the fields parsed into their types.
march = list_articles.sync(
    client=client,
    sort=Sort("-published_at"),
    published_from="2016-03",
    published_to="2016-03",
    limit=100,
)
assert isinstance(march, ArticlePage), march
dated: list[list[object]] = []
for item in march.items:
    assert isinstance(item.published_at, datetime), item.published_at
    assert isinstance(item.author, str) and isinstance(item.url, str)
    dated.append([item.article_id, item.published_at.isoformat(), item.author, item.url])
undated = article.published_at
# Search by meaning: no article holds all these words; each hit's score is a cosine.
meaning = list_articles.sync(
    client=client, q="jihadists lose desert stronghold", mode=SearchMode("semantic"), limit=3
)
assert isinstance(meaning, ArticlePage), meaning
by_meaning: list[list[object]] = []
for hit in meaning.items:
    assert isinstance(hit.score, float), hit.score
    by_meaning.append([hit.article_id, hit.score])
like = list_similar_articles.sync(
    client=client, article_id=166812, mode=SearchMode("hybrid"), limit=3
)
assert isinstance(like, ArticlePage), like
print(json.dumps({
    "meaning": by_meaning,
    "like": [i.article_id for i in like.items if isinstance(i.article_id, int)],
    "march": dated,
    "seed_published_at": [undated is None, isinstance(undated, Unset)],
    "all": walk(client),
    "source_5": walk(client, 5),
    "source_5_first": [i.article_id for i in first.items if isinstance(i.article_id, int)],
    "title": article.title,
    "missing": [int(missing.status_code), missing.parsed.status, missing.parsed.type_],
    "keyless": [int(keyless.status_code), keyless.parsed.type_],
    "sources": [s.source_id for s in sources.items],
    "source_2": [source.name, source.article_count],
}))
"""


@pytest.fixture(scope="module")
def live(seeded_url: str) -> Iterator[tuple[LiveServer, str]]:
    """A server that wants keys, and a key for it."""
    key = new_key(seeded_url)
    with serve(seeded_url, env={"CORPUS_AUTH": "keys"}) as server:
        wait_for_indexes(server)
        yield server, key


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def client_site(live: tuple[LiveServer, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python client generated from the live server's document, installed in a folder."""
    server, _ = live
    tmp_path = tmp_path_factory.mktemp("python-client")
    generator = BIN / "openapi-python-client"
    if not generator.exists():
        pytest.fail("openapi-python-client is missing: pip install -e '.[dev]'")
    spec = tmp_path / "openapi.json"
    spec.write_bytes(httpx.get(f"{server.url}/openapi.json").content)
    run([str(generator), "generate", "--path", str(spec), "--meta", "setup"], tmp_path)
    site = tmp_path / "site"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(tmp_path / "article-corpus-client"),
        ],
        tmp_path,
    )
    return site


def run_client(site: Path, script_text: str, tmp_path: Path, *args: str) -> Any:
    """Type-check `script_text` against the generated client, run it with `args` (the
    server's URL first): its JSON."""
    script = tmp_path / "use_client.py"
    script.write_text(script_text)
    # The generated package is typed: our usage must pass mypy --strict against it.
    run([str(BIN / "mypy"), "--strict", str(script)], tmp_path, MYPYPATH=str(site))
    result = run([sys.executable, str(script), *args], tmp_path, PYTHONPATH=str(site))
    return json.loads(result.stdout)


def test_generated_python_client_walks_the_live_api(
    live: tuple[LiveServer, str], client_site: Path, tmp_path: Path
) -> None:
    server, key = live
    out = run_client(client_site, USE_CLIENT, tmp_path, server.url, key)
    assert out["all"] == ALL_IDS
    assert (
        out["source_5"] == [i for n, i in enumerate(CORPUS_IDS) if CORPUS_SOURCES[n % 3] == 5][::-1]
    )
    assert out["source_5_first"] == out["source_5"][:3]
    assert out["missing"] == [404, 404, "urn:article-corpus:problem:not-found"]
    assert out["keyless"] == [401, "urn:article-corpus:problem:key-unknown"]
    assert out["sources"] == [2, 5, 7]
    assert out["source_2"] == ["Reuters", 41]
    assert out["title"].startswith("Islamic State")
    march = [
        [i, d.isoformat(), CORPUS_AUTHORS[n % 3], f"https://news.example/{i}"]
        for n, i in enumerate(CORPUS_IDS)
        if (d := corpus_date(n)) is not None and (d.year, d.month) == (2016, 3)
    ]
    assert out["march"] == sorted(march, key=lambda m: (m[1], m[0]), reverse=True)
    assert out["seed_published_at"] == [True, False]
    assert out["meaning"][0][0] == 166812
    scores = [score for _, score in out["meaning"]]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= score <= 1 for score in scores)
    assert len(out["like"]) == 3
    assert 166812 not in out["like"]


READ_FEED = r"""
import json, sys

from article_corpus_client import AuthenticatedClient
from article_corpus_client.api.articles import get_article
from article_corpus_client.api.changes import list_changes
from article_corpus_client.models import ArticleChange, ArticleDeletion, ChangePage, Problem
from article_corpus_client.types import Unset

# The document declares key schemes, so the SDK wants a token; keys are off here: any will do.
client = AuthenticatedClient(base_url=sys.argv[1], token="-", raise_on_unexpected_status=True)
page = list_changes.sync(client=client, after=0, limit=100)
assert isinstance(page, ChangePage), page
items: list[list[object]] = []
for item in page.items:
    if isinstance(item, ArticleDeletion):
        items.append(["deleted", item.article_id, item.revision, item.deleted_at.isoformat()])
    else:
        assert isinstance(item, ArticleChange)
        items.append(["changed", item.article_id, item.revision, item.title])
gone = get_article.sync_detailed(client=client, article_id=1)
assert isinstance(gone.parsed, Problem), gone
assert not isinstance(gone.parsed.deleted_at, Unset) and gone.parsed.deleted_at is not None
gone_at = gone.parsed.deleted_at.isoformat()
out = {"items": items, "next_after": page.next_after, "gone": [gone.parsed.status, gone_at]}
print(json.dumps(out))
"""


def test_generated_python_client_reads_a_feed_page_with_a_tombstone(
    client_site: Path, database_url: str, tmp_path: Path
) -> None:
    from app import takedowns
    from app.db import make_engine
    from app.settings import Settings
    from tests.factories import add_articles, record

    engine = make_engine(Settings(database_url=database_url), pooled=False)
    try:
        add_articles(engine, [record(1, title="One"), record(2, title="Two")])
        assert takedowns.delete_articles(engine, [1]).done == [1]
    finally:
        engine.dispose()
    with serve(database_url) as server:
        out = run_client(client_site, READ_FEED, tmp_path, server.url)
    assert [item[:3] for item in out["items"]] == [["changed", 2, 2], ["deleted", 1, 3]]
    assert out["items"][0][3] == "Two"
    assert out["items"][1][3].endswith("+00:00")  # an aware datetime, parsed by the client
    assert out["next_after"] == 3
    assert out["gone"] == [410, out["items"][1][3]]


# --- generated TypeScript types -----------------------------------------------------------


def test_generated_typescript_types_check_a_client(tmp_path: Path) -> None:
    tsc, generator = (
        TS_DIR / "node_modules/.bin/tsc",
        TS_DIR / "node_modules/.bin/openapi-typescript",
    )
    if not (tsc.exists() and generator.exists()):
        pytest.fail(f"TypeScript tools are missing: run `npm ci --prefix {TS_DIR}` (Node 18+)")
    spec = tmp_path / "openapi.json"
    spec.write_text(render(create_app()))
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(TS_DIR / name, tmp_path / name)
    # Our bodies omit optional keys rather than sending their defaults: keep them optional.
    run([str(generator), str(spec), "--default-non-nullable=false", "-o", "schema.ts"], tmp_path)
    run([str(tsc), "-p", str(tmp_path / "tsconfig.json")], tmp_path)
    # And the types have teeth: a summary has no `body`, so this must not compile.
    (tmp_path / "client.ts").write_text(
        'import type { components } from "./schema";\n'
        'export const bad = (s: components["schemas"]["ArticleSummary"]): string => s.body;\n'
    )
    failed = subprocess.run(
        [str(tsc), "-p", str(tmp_path / "tsconfig.json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode != 0
    assert "'body' does not exist" in failed.stdout
