"""The corpus language (CORPUS_LANGUAGE): the search index stems that language's word forms,
records the language in its meta document, and is rebuilt when it changes. German and
French sentences written for these tests, on both backends."""

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from app.search import sync
from app.search.index import SearchIndex, index_path
from app.settings import Settings
from tests.factories import add_articles, make_client, record

pytestmark = pytest.mark.anyio

ARTICLES = [
    (1, "Die Wahlen in Bayern", "Bei den Wahlen am Sonntag gewann die Partei deutlich."),
    (2, "Regierungen im Streit", "Zwei Regierungen streiten seit Monaten über den Haushalt."),
    (3, "Les gouvernements européens", "Les gouvernements se réunissent à Bruxelles lundi."),
    (4, "Les parcs nationaux", "Les parcs nationaux attirent des millions de visiteurs."),
    (5, "The national park", "A national park opened in the valley on Monday."),
]


async def found(client: httpx.AsyncClient, q: str) -> list[int]:
    response = await client.get("/v1/articles", params={"q": q})
    assert response.status_code == 200, response.text
    return sorted(item["article_id"] for item in response.json()["items"])


def language_of(database_url: str) -> str:
    index = SearchIndex.open(index_path(Settings(database_url=database_url)))
    assert index is not None
    meta = index.meta()
    assert meta is not None
    return meta.language


async def test_the_language_sets_the_word_forms_and_a_change_rebuilds_the_index(
    database_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    add_articles(engine, [record(n, title=t, content=c) for n, t, c in ARTICLES])
    async with make_client(database_url) as client:  # English, the default
        assert await found(client, "Wahl") == []
        assert await found(client, "Regierung") == []
        assert await found(client, "national") == [5]
        # English stems cut `-ment` and `-s` alike: these two meet in any of the three.
        assert await found(client, "gouvernement") == [3]
    assert language_of(database_url) == "en"

    capsys.readouterr()
    async with make_client(database_url, language="de") as client:
        assert await found(client, "Wahl") == [1]
        assert await found(client, "Regierung") == [2]
    assert "rebuilding the search index" in (log := capsys.readouterr().err)
    assert "its language is en, not de" in log
    assert language_of(database_url) == "de"

    async with make_client(database_url, language="fr") as client:
        assert await found(client, "national") == [4, 5]
        assert await found(client, "gouvernement") == [3]
        assert await found(client, "Wahl") == []
        # Typo tolerance compares words as written, in any language.
        page = await client.get("/v1/articles", params={"q": "natoinaux", "typos": "auto"})
        assert [item["article_id"] for item in page.json()["items"]] == [4]
    assert language_of(database_url) == "fr"


def test_a_reader_follows_a_rebuild_in_another_language(database_url: str, engine: Engine) -> None:
    add_articles(engine, [record(1, title="Die Wahlen", content="Die Wahlen sind vorbei.")])
    english = Settings(database_url=database_url)
    sync.rebuild_or_follow(english, engine)
    reader = SearchIndex.open(index_path(english))
    assert reader is not None
    assert reader.terms("Wahlen") == ["wahlen"]
    sync.rebuild_or_follow(english.model_copy(update={"language": "de"}), engine)
    reader.reload()  # what every other worker's follower does on its next poll
    assert reader.language == "de"
    assert reader.terms("Wahlen") == ["wahl"]


def test_corpus_language_is_an_iso_code_of_a_stemmer_or_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CORPUS_LANGUAGE", "fr")
    assert Settings().language == "fr"
    assert Settings(language="none").language == "none"
    with pytest.raises(ValidationError):
        Settings(language="french")
    with pytest.raises(ValidationError):
        Settings(language="xx")
