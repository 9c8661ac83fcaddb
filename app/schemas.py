"""API models: the public contract. Storage details (hashes, raw extra JSON) stay in models."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ArticleIdField = Annotated[int, Field(description="The corpus's own id.", examples=[166812])]
SourceIdField = Annotated[int, Field(description="The source (publisher) id.", examples=[2])]
PublishedAtField = Annotated[
    datetime | None,
    Field(
        description="When it was published, in UTC (RFC 3339); null when the record had no date.",
        examples=["2016-03-27T09:14:00Z"],
    ),
]
UrlField = Annotated[
    str | None,
    Field(
        description="Where it was published; null when the record had none.",
        examples=["https://news.example/2016/03/27/palmyra"],
    ),
]
AuthorField = Annotated[
    str | None,
    Field(
        description="Its byline as given (several authors joined by `, `); null when none.",
        examples=["Jane Doe"],
    ),
]


class ArticleSummary(BaseModel):
    """A list item: enough to show a result, not the whole body.

    Every key is present unless `fields` leaves it out, except `excerpt`/`content` (per
    `content`) and `score`/`snippet` (search hits only); absent keys are omitted, never null.
    """

    model_config = ConfigDict(title="ArticleSummary")

    article_id: ArticleIdField | None = None
    source_id: SourceIdField | None = None
    title: str | None = None
    excerpt: str | None = Field(
        default=None,
        description=(
            "The start of the content, cut at a word boundary; ends with '…' when cut. "
            "Present with `content=excerpt` (the default)."
        ),
    )
    content: str | None = Field(default=None, description="The whole body, with `content=full`.")
    word_count: int | None = Field(
        default=None, description="Whitespace-separated tokens of the content."
    )
    published_at: PublishedAtField = None
    url: UrlField = None
    author: AuthorField = None
    score: float | None = Field(
        default=None,
        description=(
            "Search hits only, higher is better: BM25 relevance (`mode=keyword`), cosine "
            "similarity of meaning in [-1, 1] (`semantic`), or the fused reciprocal-rank "
            "score (`hybrid`, at most 2/61)."
        ),
    )
    snippet: str | None = Field(
        default=None,
        description=(
            "Search hits only: a passage as HTML, every matched term in <mark>…</mark> and "
            "the rest escaped; the escaped excerpt when no word matched (search by meaning)."
        ),
    )


class Article(BaseModel):
    """A full article: content exactly as ingested."""

    model_config = ConfigDict(title="Article")

    article_id: ArticleIdField
    source_id: SourceIdField
    title: str
    content: str
    word_count: int = Field(description="Whitespace-separated tokens of the content.")
    published_at: PublishedAtField = None
    url: UrlField = None
    author: AuthorField = None
    extra: dict[str, object] | None = Field(
        default=None, description="Fields the record carried beyond the known ones."
    )
    ingested_at: datetime = Field(description="When the article was first ingested (UTC).")
    updated_at: datetime = Field(description="When its stored fields last changed (UTC).")


class FacetCount(BaseModel):
    """How many matching articles have this value."""

    model_config = ConfigDict(title="FacetCount")

    value: int | str | None = Field(
        description=(
            "A source_id (`source_id`), or a calendar bucket in UTC (`published_at:year` "
            "`2016`, `:month` `2016-03`, `:day` `2016-03-27`, each also a valid "
            "published_from/published_to); null counts the undated articles."
        ),
        examples=[2, "2016-03"],
    )
    count: int = Field(examples=[451])


class ArticlePage(BaseModel):
    """One page of articles, with links to its neighbours (null at either end)."""

    model_config = ConfigDict(title="ArticlePage")

    items: list[ArticleSummary]
    next: str | None = Field(description="URL of the next page, or null on the last page.")
    prev: str | None = Field(description="URL of the previous page, or null on the first.")
    total: int | None = Field(
        description=(
            "How many articles match, with `count=exact|estimated`; else null. With "
            "`mode=semantic` or `hybrid`, how many hits the ranking holds (see search.md)."
        )
    )
    total_is_exact: bool | None = Field(
        description="Whether `total` is exact (false: a planner estimate); null when not counted."
    )
    facets: dict[str, list[FacetCount]] | None = Field(
        default=None,
        description=(
            "With `facet` only, by facet name: matches per source (most first) or per "
            "calendar bucket (in time order, the undated last)."
        ),
    )
    suggestion: str | None = Field(
        default=None,
        description=(
            "With `q` only: when the search found nothing, the query with each unknown word "
            "replaced by the most frequent word of the corpus within typo reach (as "
            '`typos=auto` counts it), for a "did you mean" link; null when it found '
            "something or no word is close."
        ),
        examples=["palmyra"],
    )


class Source(BaseModel):
    """A publisher and how many articles the corpus holds from it."""

    model_config = ConfigDict(title="Source")

    source_id: SourceIdField
    name: str | None = Field(description="Name from a sources file, if one was ingested.")
    article_count: int


class SourcePage(BaseModel):
    """All sources, by id."""

    model_config = ConfigDict(title="SourcePage")

    items: list[Source]


class ProblemError(BaseModel):
    """One invalid or unknown parameter in a problem."""

    location: str = Field(description="Where the parameter was: query, path, header.")
    name: str = Field(description="The parameter's name.")
    message: str
    type: str = Field(
        description="A machine-readable reason, e.g. int_parsing, or unknown_parameter."
    )
    suggestion: str | None = Field(
        default=None,
        description="`unknown_parameter` only: the known parameter it may have meant.",
        examples=["q"],
    )


class Problem(BaseModel):
    """An RFC 9457 problem detail, sent as application/problem+json."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(examples=["urn:article-corpus:problem:not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No article with article_id 7."])
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[ProblemError] | None = Field(
        default=None, description="Parameter problems only: each bad or unknown parameter."
    )
    request_id: str | None = Field(
        default=None, description="The request's X-Request-ID, to quote when reporting it."
    )
    deleted_at: datetime | None = Field(
        default=None, description="`gone` problems only: when the article was taken down (UTC)."
    )


class IndexState(BaseModel):
    """How far this process's search index has followed the database."""

    model_config = ConfigDict(title="IndexState")

    state: str = Field(
        description="`ready`, or `building` until it first catches up.", examples=["ready"]
    )
    revision: int = Field(description="The newest revision the index has applied.")
    database_revision: int = Field(description="The database's newest revision, last seen.")
    writer: bool = Field(description="Whether this process writes the index (holds its lock).")


class DatabaseState(BaseModel):
    """Whether this process reads a primary or a read replica, and how far a replica lags."""

    model_config = ConfigDict(title="DatabaseState")

    replica: bool = Field(description="Whether the database is a read replica (a hot standby).")
    lag_s: float | None = Field(
        description="A replica's delay behind its primary in seconds: 0 while it streams and "
        "has applied all it received, else the age of the last change it applied. Null on a "
        "primary.",
        examples=[None],
    )


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(Health):
    """The database answers; what it is; and how far the search index has got."""

    model_config = ConfigDict(title="Readiness")

    database: DatabaseState
    search_index: IndexState | None = Field(
        default=None, description="The search index's state (null: this process has none)."
    )
    vector_index: IndexState | None = Field(
        default=None,
        description="The vector index's state, for search by meaning (null: it is off).",
    )


RevisionField = Annotated[
    int,
    Field(
        description="Strictly increasing across all writes; newer changes have higher ones.",
        examples=[1042],
    ),
]


class ArticleChange(Article):
    """An article as the detail endpoint gives it, plus its place in the change feed."""

    model_config = ConfigDict(title="ArticleChange")

    revision: RevisionField
    deleted: Literal[False] = Field(
        description="Always false here: the article was inserted or updated."
    )


class ArticleDeletion(BaseModel):
    """An article taken down: a mirror removes its copy (`corpus delete`)."""

    model_config = ConfigDict(title="ArticleDeletion")

    article_id: ArticleIdField
    revision: RevisionField
    deleted: Literal[True] = Field(description="Always true here: the article was taken down.")
    deleted_at: datetime = Field(description="When the article was taken down (UTC).")


# A plain union, told apart by the `const` of `deleted` in each: with a `discriminator`,
# OpenAPI's mapping keys are strings, and generators type the boolean as "true"/"false".
Change = ArticleChange | ArticleDeletion


class ChangePage(BaseModel):
    """Rows changed after a revision, in revision order, and where to continue."""

    model_config = ConfigDict(title="ChangePage")

    items: list[Change] = Field(
        description="Changes in revision order: an article (`deleted: false`) or a "
        "takedown (`deleted: true`)."
    )
    next_after: int = Field(
        description=(
            "Pass as `after` on the next poll: the last item's revision, or the given "
            "`after` when there are no items."
        ),
        examples=[1042],
    )
