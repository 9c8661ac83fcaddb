"""API models: the public contract. Storage details (hashes, raw extra JSON) stay in models."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ArticleIdField = Annotated[int, Field(description="The corpus's own id.", examples=[166812])]
SourceIdField = Annotated[int, Field(description="The source (publisher) id.", examples=[2])]


class ArticleSummary(BaseModel):
    """A list item: enough to show a result, not the whole body."""

    model_config = ConfigDict(title="ArticleSummary")

    article_id: ArticleIdField
    source_id: SourceIdField
    title: str
    excerpt: str = Field(
        description="The start of the content, cut at a word boundary; ends with '…' when cut."
    )


class Article(BaseModel):
    """A full article: content exactly as ingested."""

    model_config = ConfigDict(title="Article")

    article_id: ArticleIdField
    source_id: SourceIdField
    title: str
    content: str
    extra: dict[str, object] | None = Field(
        default=None, description="Fields the record carried beyond the known ones."
    )
    ingested_at: datetime = Field(description="When the article was first ingested (UTC).")
    updated_at: datetime = Field(description="When its stored fields last changed (UTC).")


class ArticlePage(BaseModel):
    """One page of articles, with links to its neighbours (null at either end)."""

    model_config = ConfigDict(title="ArticlePage")

    items: list[ArticleSummary]
    next: str | None = Field(description="URL of the next page, or null on the last page.")
    prev: str | None = Field(description="URL of the previous page, or null on the first.")


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
    """One invalid parameter in a validation problem."""

    location: str = Field(description="Where the parameter was: query, path, header.")
    name: str = Field(description="The parameter's name.")
    message: str
    type: str = Field(description="A machine-readable reason, e.g. int_parsing.")


class Problem(BaseModel):
    """An RFC 9457 problem detail, sent as application/problem+json."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(examples=["urn:article-corpus:problem:not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["No article with article_id 7."])
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[ProblemError] | None = Field(
        default=None, description="Validation problems only: each bad parameter."
    )


class Health(BaseModel):
    status: str = Field(examples=["ok"])
