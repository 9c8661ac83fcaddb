"""One tantivy index folder, derived from one database, and what it records about itself.

Besides the articles the index holds one meta document (article_id 0, never a corpus id)
naming the database it was built from, its schema version, its language (the analyzer's
stemmer) and the newest revision it has applied. The meta document is replaced in the same
commit as the changes it counts, so an index never claims more than it holds, whatever
moment a crash hits. An index of another database, of another schema or language, or one
that cannot be opened is wiped and rebuilt, never served. Knows nothing of HTTP.
"""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson
import tantivy
from sqlalchemy.engine import make_url

from app.dates import Unit
from app.search.analysis import DEFAULT_LANGUAGE, analyzer
from app.settings import Settings

log = logging.getLogger(__name__)

# Bumped whenever the schema or the analyzer changes: an index of another version is rebuilt.
SCHEMA_VERSION = 3
ANALYZER = "corpus"
WORDS_ANALYZER = "words"  # words as written: the stemmed analyzer without its stemmer
META_ID = 0  # the meta document's article_id; corpus ids start at 1
# Each text field's words as written (doc ids only: no positions, no frequencies): what
# typo tolerance compares a typed word with (app/search/typos.py).
WORD_FIELDS = {"title": "title_words", "content": "content_words"}


# An undated article has none of the date fields: `exists` tells dated from undated.
PUBLISHED_AT = "published_at"  # microseconds since the epoch (app/dates.py)
BUCKET_FIELDS = {
    Unit.YEAR: "published_year",
    Unit.MONTH: "published_month",
    Unit.DAY: "published_day",
}


def build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("article_id", indexed=True, fast=True)
    builder.add_unsigned_field("source_id", indexed=True, fast=True)
    # Date order, ranges and (one field per calendar unit) facets: all read as columns.
    builder.add_integer_field(PUBLISHED_AT, indexed=True, fast=True)
    for field in BUCKET_FIELDS.values():
        builder.add_integer_field(field, fast=True)
    # Exact filters: the whole value is one term.
    builder.add_text_field("author", tokenizer_name="raw")
    builder.add_text_field("url", tokenizer_name="raw")
    # Bodies and titles are indexed, never stored: snippets are cut from the database's copy.
    builder.add_text_field("title", tokenizer_name=ANALYZER, index_option="position")
    builder.add_text_field("content", tokenizer_name=ANALYZER, index_option="position")
    for field in WORD_FIELDS.values():
        builder.add_text_field(field, tokenizer_name=WORDS_ANALYZER, index_option="basic")
    builder.add_text_field("meta", stored=True, tokenizer_name="raw")
    return builder.build()


SCHEMA = build_schema()


def index_path(settings: Settings) -> Path:
    """The index folder: the setting, else beside a SQLite file (`data/corpus.db` ->
    `data/corpus.index/`), else under `index_root` named by host, port and database, so two
    databases never share one."""
    if settings.index_dir:
        return Path(settings.index_dir)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return Path(settings.index_root) / "sqlite-memory"
        file = Path(database)
        return file.with_name(file.stem + ".index")
    name = f"{url.host or 'localhost'}-{url.port or 5432}-{url.database or 'postgres'}"
    return Path(settings.index_root) / name


@dataclass(frozen=True, slots=True)
class IndexMeta:
    database_id: str
    revision: int
    language: str  # the stemmer's language (app/search/analysis.py), or `none`
    schema_version: int = SCHEMA_VERSION

    def document(self) -> tantivy.Document:
        doc = tantivy.Document()
        doc.add_unsigned("article_id", META_ID)
        payload = {
            "database_id": self.database_id,
            "revision": self.revision,
            "language": self.language,
            "schema_version": self.schema_version,
        }
        doc.add_text("meta", orjson.dumps(payload).decode())
        return doc


class SearchIndex:
    """An open index folder: searchers for requests, its meta, and its analyzers, those of
    the language its meta document records."""

    def __init__(self, path: Path, index: tantivy.Index, language: str) -> None:
        self.path = path
        self.index = index
        self._use_language(language)

    def _use_language(self, language: str) -> None:
        self.language = language
        self.analyzer = analyzer(language)
        self.unstemmed = analyzer(language, stem=False)
        self.index.register_tokenizer(ANALYZER, self.analyzer)
        self.index.register_tokenizer(WORDS_ANALYZER, self.unstemmed)

    @classmethod
    def open(cls, path: Path) -> "SearchIndex | None":
        """The index in `path` as it stands, or None when there is none or it is unreadable."""
        if not (path / "meta.json").exists():
            return None
        try:
            opened = tantivy.Index(SCHEMA, path=str(path), reuse=True)
            meta = _read_meta(opened.searcher())
        except (OSError, ValueError) as exc:
            log.warning("search index at %s cannot be read (%s)", path, exc)
            return None
        return cls(path, opened, meta.language if meta is not None else DEFAULT_LANGUAGE)

    @classmethod
    def create(cls, path: Path, database_id: str, language: str) -> "SearchIndex":
        """A new, empty index for `database_id` in `path`, replacing whatever was there."""
        if path.exists():
            # Renamed away first: a reader of the old index (another worker) may still
            # create its lock file in it while it is being deleted.
            gone = path.with_name(path.name + ".gone")
            shutil.rmtree(gone, ignore_errors=True)
            path.rename(gone)
            shutil.rmtree(gone, ignore_errors=True)
        path.mkdir(parents=True)
        index = cls(path, tantivy.Index(SCHEMA, path=str(path), reuse=False), language)
        writer = index.writer()
        writer.add_document(IndexMeta(database_id, 0, language).document())
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        return index

    @classmethod
    def open_for(cls, path: Path, database_id: str, language: str) -> "SearchIndex":
        """The index in `path` if it belongs to `database_id` and speaks `language`, else a
        new one (said in the log). Only the process that holds the follower lock may call
        this: it may wipe the folder."""
        index = cls.open(path)
        if index is None:
            if path.exists():
                log.warning(
                    "rebuilding the search index at %s: it is damaged, or of another schema "
                    "(an older version's)",
                    path,
                )
            return cls.create(path, database_id, language)
        meta = index.meta()
        why = None
        if meta is None:
            why = "it has no meta document"
        elif meta.database_id != database_id:
            why = f"it was built from another database ({meta.database_id})"
        elif meta.schema_version != SCHEMA_VERSION:
            why = f"its schema version is {meta.schema_version}, not {SCHEMA_VERSION}"
        elif meta.language != language:
            why = f"its language is {meta.language}, not {language}"
        if why is None:
            return index
        log.warning("rebuilding the search index at %s: %s", path, why)
        return cls.create(path, database_id, language)

    def writer(self, heap_bytes: int = 128_000_000, threads: int = 0) -> tantivy.IndexWriter:
        return self.index.writer(heap_bytes, threads)

    def searcher(self) -> tantivy.Searcher:
        return self.index.searcher()

    def view(self) -> "IndexView":
        """The index's newest commit, for one request."""
        return IndexView(self, self.index.searcher())

    def reload(self) -> None:
        """See the last commit; a rebuild in another language brings its analyzers along."""
        self.index.reload()
        meta = self.meta()
        if meta is not None and meta.language != self.language:
            self._use_language(meta.language)

    def meta(self, searcher: tantivy.Searcher | None = None) -> IndexMeta | None:
        """What the meta document of the last commit (or of `searcher`'s) says."""
        return _read_meta(searcher or self.searcher())

    def revision(self, searcher: tantivy.Searcher | None = None) -> int:
        """The revision the index (or `searcher`'s view of it) has applied; 0 when none."""
        meta = self.meta(searcher)
        return meta.revision if meta is not None else 0

    def terms(self, text: str, *, stem: bool = True) -> list[str]:
        """`text` as the index's terms (what the analyzer makes of it for both sides)."""
        return list((self.analyzer if stem else self.unstemmed).analyze(text))

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


def _read_meta(searcher: tantivy.Searcher) -> IndexMeta | None:
    found = searcher.search(tantivy.Query.term_query(SCHEMA, "article_id", META_ID), 1)
    if not found.hits:
        return None
    values = searcher.doc(found.hits[0][1]).to_dict().get("meta") or []
    if not values:
        return None
    data = orjson.loads(values[0])
    return IndexMeta(
        str(data["database_id"]),
        int(data["revision"]),
        str(data.get("language", DEFAULT_LANGUAGE)),  # indexes before languages were English
        int(data["schema_version"]),
    )


class IndexView:
    """One commit of an index as one request reads it. Every read of the request (its page,
    its count, its facets) goes through this one searcher, so they agree even when the
    follower commits meanwhile, and a reply kept for reuse is filed under its revision."""

    __slots__ = ("_revision", "index", "searcher")

    def __init__(self, index: SearchIndex, searcher: tantivy.Searcher) -> None:
        self.index = index
        self.searcher = searcher
        self._revision: int | None = None

    def revision(self) -> int:
        """The revision of this commit, read once: its meta document is a search, a stored
        document and a JSON parse (12.6 µs on a 200k index), and a search asks two or
        three times (its reply's key, its ranking's, its meaning's)."""
        if self._revision is None:
            self._revision = self.index.revision(self.searcher)
        return self._revision
