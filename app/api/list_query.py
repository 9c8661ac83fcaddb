"""The query of a list of articles, declared once.

The list's parameters are pydantic models (`ListQuery` and its kin): FastAPI reads and
documents them for the routes (`Annotated[ListQuery, Query()]`), and the fast routes
(fastpath.py) read the same models with `read_query`, raising FastAPI's own 422, so a
parameter exists on every path, with the same rules, once it is declared here.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from fastapi import Query, Request
from fastapi._compat import field_annotation_is_sequence
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from sqlmodel import Session
from starlette.datastructures import QueryParams

from app.api.parameters import check_known, model_parameters
from app.dates import Bound, parse_bound
from app.errors import InvalidParameter
from app.models import AUTHOR_MAX_CHARS, MAX_ID, URL_MAX_BYTES
from app.queries.articles import ArticleFilter, Content, Sort
from app.queries.cache import RevisionCache
from app.queries.counts import CountMode, Facet
from app.search.language import MAX_QUERY_CHARS, SearchMode
from app.search.options import SearchField, Typos
from app.settings import Settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_CURSOR_CHARS = 2048
MAX_SOURCE_IDS = 100
MAX_IDS = 100
MAX_IDS_CHARS = MAX_IDS * 21
MAX_FIELDS_CHARS = 200
MAX_FACETS = 5
MAX_AUTHORS = 20
MAX_DATE_CHARS = 64
LIST_FIELDS = frozenset(
    {
        "article_id",
        "source_id",
        "title",
        "excerpt",
        "content",
        "word_count",
        "published_at",
        "url",
        "author",
        "score",
        "snippet",
    }
)


def _date_bound(text: str | None) -> str | None:
    """A published_from/published_to that parses (app/dates.py), else pydantic's 422."""
    if text is not None:
        try:
            parse_bound(text)
        except ValueError:
            raise ValueError(
                "expected a date-time (2016-03-27T09:14:00Z; no offset means UTC), a date "
                "(2016-03-27), a month (2016-03) or a year (2016)"
            ) from None
    return text


DateParam = Annotated[str | None, AfterValidator(_date_bound)]


# How a page of items is shaped: lists and similar articles declare these alike.
FieldsParam = Annotated[
    str | None,
    Field(
        max_length=MAX_FIELDS_CHARS,
        description=(
            "Comma-separated item fields to return, from: " + ", ".join(sorted(LIST_FIELDS)) + "."
        ),
        examples=["article_id,title"],
    ),
]
ModeParam = Annotated[
    SearchMode,
    Field(
        description=(
            "How `q` finds articles: `keyword` (default: its words, ranked by BM25), "
            "`semantic` (by meaning: the articles nearest it, up to 1000) or `hybrid` (both "
            "rankings fused by reciprocal rank). `semantic` and `hybrid` need `q`, and are "
            "a 422 where the server has search by meaning off."
        ),
        examples=["hybrid"],
    ),
]
TyposParam = Annotated[
    Typos,
    Field(
        description=(
            "`0` (default): words match as typed (and their word forms). `auto`: a word of "
            "5-8 letters also matches words one typo away (a letter inserted, deleted, "
            "changed, or two swapped), of 9 or more two typos away; hits that match every "
            "word as typed rank first. Short words, words with digits, quoted words, "
            "phrases, prefixes (`palm*`) and exclusions stay exact."
        ),
        examples=["auto"],
    ),
]
ContentParam = Annotated[
    Content,
    Field(
        description="How much body items carry: none, excerpt (default) or full content.",
        examples=["excerpt"],
    ),
]
LimitParam = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_LIMIT,
        description=f"How many items per page (1 to {MAX_LIMIT}).",
        examples=[20],
    ),
]


def repeated_default(*values: object) -> Any:
    """The default of a repeated (list) parameter, as a tuple: pydantic deep-copies a list
    default each time it validates a model (~15 µs of a list request's CPU for four of
    them) and takes a tuple as it is. Every reader converts the value anyway."""
    return values


class QueryModel(BaseModel):
    """A query model whose repeatable parameters of ids or names from a fixed set (a list of
    integers, of an enum or of literals) also take their values comma-separated: `source_id=3,4` is
    `source_id=3&source_id=4`, and an empty value is invalid in either form. A list of free
    text is never split: its values may hold commas."""

    @model_validator(mode="before")
    @classmethod
    def _split_commas(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        found = dict(data)
        for name in _comma_fields(cls):
            values = found.get(name)
            if isinstance(values, str | list):
                given = [values] if isinstance(values, str) else values
                found[name] = [
                    part.strip() if isinstance(part, str) else part
                    for value in given
                    for part in (value.split(",") if isinstance(value, str) else [value])
                ]
        return found


@cache
def _comma_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The list fields of `model` whose items are integers, enum members or literals."""
    found = []
    for name, field in model.model_fields.items():
        if get_origin(field.annotation) is not list:
            continue
        item = get_args(field.annotation)[0]
        if get_origin(item) is Annotated:
            item = get_args(item)[0]
        fixed = isinstance(item, type) and (issubclass(item, Enum) or item is int)
        if fixed or get_origin(item) is Literal:
            found.append(field.alias or name)
    return tuple(found)


class SourcesQuery(QueryModel):
    """Which sources, repeated: a parameter of /v1/articles and the exports (the articles of
    one source take it from their path)."""

    source_id: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        repeated_default(),
        max_length=MAX_SOURCE_IDS,
        description=(
            "Only articles from these sources; repeat for several (`?source_id=2&source_id=5`) "
            "or separate them by commas (`?source_id=2,5`)."
        ),
        examples=[[2]],
    )


class FilterQuery(QueryModel):
    """Which articles: the filter shared by lists and exports."""

    q: str | None = Field(
        None,
        max_length=MAX_QUERY_CHARS,
        description=(
            'Full-text search over title and content. Words are ANDed; `"a phrase"`, '
            "`-word` or `NOT word` excludes, `OR` between two items, parentheses group, "
            "`palm*` is a prefix. Blank means no search. "
            f"At most {MAX_QUERY_CHARS} characters."
        ),
        examples=['palmyra "islamic state" -video'],
    )
    id_min: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="Smallest article_id to include (inclusive).",
        examples=[1],
    )
    id_max: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="Largest article_id to include (inclusive).",
        examples=[200000],
    )
    ids: str | None = Field(
        None,
        max_length=MAX_IDS_CHARS,
        description=f"Only these article ids, comma-separated (at most {MAX_IDS}).",
        examples=["166812,7,14"],
    )
    published_from: DateParam = Field(
        None,
        max_length=MAX_DATE_CHARS,
        description=(
            "Only articles published at or after this (UTC unless an offset is given): a "
            "date-time, a date (from its midnight), a month (`2016-03`) or a year (`2016`). "
            "Undated articles never match a date filter."
        ),
        examples=["2016-03-01"],
    )
    published_to: DateParam = Field(
        None,
        max_length=MAX_DATE_CHARS,
        description=(
            "Only articles published at or before this (inclusive): a date-time, or a date, "
            "month or year, which includes the whole of it (`2016-03-31` includes that day, "
            "`2016-03` all of March). Not before `published_from`."
        ),
        examples=["2016-03-31"],
    )
    author: list[Annotated[str, Field(min_length=1, max_length=AUTHOR_MAX_CHARS)]] = Field(
        repeated_default(),
        max_length=MAX_AUTHORS,
        description=(
            "Only articles with exactly this byline, as stored; repeat for any of several "
            "(`?author=Jane%20Doe&author=John%20Roe`)."
        ),
        examples=[["Jane Doe"]],
    )
    url: str | None = Field(
        None,
        min_length=1,
        max_length=URL_MAX_BYTES,
        description="Only the article at exactly this url (do we have this story already?).",
        examples=["https://news.example/2016/03/27/palmyra"],
    )
    typos: TyposParam = Typos.OFF
    search_in: list[SearchField] = Field(
        repeated_default(SearchField.TITLE, SearchField.CONTENT),
        min_length=1,
        max_length=len(SearchField),
        description=(
            "Where `q` matches: `title`, `content`, or both (default; `title,content` or "
            "repeated). Ranking, snippets (a title-only search's is the marked title), "
            "counts and facets follow."
        ),
        examples=[["title"]],
    )

    def article_filter(self, source_ids: Sequence[int] = ()) -> ArticleFilter:
        """The filter, narrowed to `source_ids` when given; InvalidParameter for bad `ids`
        or for `published_from` after `published_to`."""
        start, end = published_range(self.published_from, self.published_to)
        return ArticleFilter(
            source_ids=tuple(source_ids),
            id_min=self.id_min,
            id_max=self.id_max,
            ids=parse_ids(self.ids),
            q=self.q,
            published_from=start,
            published_before=end,
            authors=tuple(self.author),
            url=self.url,
            typos=self.typos,
            search_in=frozenset(self.search_in),
        )


class ListQuery(FilterQuery):
    """The query of a list of articles (/v1/sources/{id}/articles takes it as it is)."""

    sort: Sort | None = Field(
        None,
        description=(
            "Order: `-article_id` (default), `article_id`, `title`, `-title` (code-point "
            "order), `-published_at` (newest first), `published_at`, or `relevance` (default "
            "with `q`). Ties go by article_id; by date, undated articles come last either way."
        ),
        examples=["-published_at"],
    )
    fields: FieldsParam = None
    content: ContentParam = Content.EXCERPT
    mode: ModeParam = SearchMode.KEYWORD
    count: CountMode = Field(
        CountMode.NONE,
        description=(
            "Add `total`: none (default), exact, or estimated (PostgreSQL's planner "
            "estimate; exact on SQLite). `total_is_exact` says which it is."
        ),
        examples=["exact"],
    )
    facet: list[Facet] = Field(
        repeated_default(),
        max_length=MAX_FACETS,
        description=(
            "Add `facets` with match counts per value: `source_id` (most first), or "
            "`published_at:year`, `published_at:month`, `published_at:day` (calendar buckets "
            "in UTC, in time order, then the undated as value null). Repeatable, or "
            "comma-separated."
        ),
        examples=[["source_id", "published_at:month"]],
    )
    limit: LimitParam = DEFAULT_LIMIT
    cursor: str | None = Field(
        None,
        max_length=MAX_CURSOR_CHARS,
        description="Opaque cursor from a previous page's `next` or `prev` link.",
        examples=[
            "KTpfHcpDcNaYWrkqW1swLjM5NTQ4NDA0NjkzMzM3NjQsNDNdLCJhIiwiMzYyZGY5ZTExYTQ1Zjc4MiJd"
        ],
    )

    def options(self, source_ids: Sequence[int] = ()) -> "ListOptions":
        """What to list, with the filter narrowed to `source_ids`; InvalidParameter for a
        bad `ids` or `fields`."""
        return ListOptions(
            flt=with_mode(self.article_filter(source_ids), self.mode, self.sort),
            sort=self.sort,
            limit=self.limit,
            cursor=self.cursor,
            fields=parse_fields(self.fields),
            content=self.content,
            count=self.count,
            facets=list(dict.fromkeys(self.facet)),
        )


# Base order puts source_id first, where the OpenAPI document has always listed it.
class ArticleListQuery(ListQuery, SourcesQuery):
    """The query of /v1/articles."""


class ExportQuery(FilterQuery, SourcesQuery):
    """The query of the exports: the list's filter, and how many records at most."""

    limit: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="At most this many records, the first in article_id order; all if omitted.",
        examples=[1000],
    )


class SimilarQuery(SourcesQuery):
    """The query of similar articles: which sources, and the shape of the page."""

    mode: SearchMode | None = Field(
        None,
        description=(
            "Like by what: `keyword` (shared words, more-like-this), `semantic` (meaning) or "
            "`hybrid` (both fused). Default `keyword`, the best measured (docs/search.md)."
        ),
        examples=["semantic"],
    )
    typos: Annotated[
        Typos,
        Field(
            description=(
                "Accepted as on the lists, so one set of search parameters fits every "
                "route, and ignored: similar articles match the article's own words."
            ),
            examples=["auto"],
        ),
    ] = Typos.OFF
    limit: LimitParam = DEFAULT_LIMIT
    content: ContentParam = Content.EXCERPT
    fields: FieldsParam = None


ListQueryDep = Annotated[ListQuery, Query()]
SimilarQueryDep = Annotated[SimilarQuery, Query()]
ArticleListQueryDep = Annotated[ArticleListQuery, Query()]
ExportQueryDep = Annotated[ExportQuery, Query()]


def read_query(model: type[M], params: QueryParams) -> M:
    """`params` read into `model` as FastAPI reads a query model: a list field takes every
    value of its name, any other field the last one, and the errors are FastAPI's 422.
    A parameter the model does not declare is UnknownParameter, as on the FastAPI routes."""
    check_known(params.keys(), model_parameters(model))
    data: dict[str, object] = {}
    for name, is_list in _query_fields(model):
        if is_list:
            if values := params.getlist(name):
                data[name] = values
        elif name in params:
            data[name] = params[name]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _request_error(exc, "query") from None


@cache
def _query_fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """Each field's name, and whether it is a list (repeated in the query string)."""
    # FastAPI's own rule for a repeated parameter, so both paths read a field alike
    # (`list[int] | None` included, which a plain `get_origin(...) is list` would not).
    return tuple(
        (name, field_annotation_is_sequence(f.annotation)) for name, f in model.model_fields.items()
    )


def read_path(adapter: TypeAdapter[T], name: str, value: str) -> T:
    """A path parameter validated as FastAPI validates it, with FastAPI's 422."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise _request_error(exc, "path", name) from None


def _request_error(exc: ValidationError, *loc: str) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": (*loc, *error["loc"])} for error in exc.errors(include_url=False)]
    )


def with_mode(flt: ArticleFilter, mode: SearchMode, sort: Sort | None) -> ArticleFilter:
    """`flt` searched by `mode`; InvalidParameter when the search has no words to find the
    meaning of, or asks a search by meaning for an order other than its ranking."""
    if mode is SearchMode.KEYWORD:
        return flt
    query = flt.search
    if query is None:
        raise InvalidParameter(
            f"mode={mode.value} needs q: the words to search by.", parameter="mode"
        )
    if not query.matches_nothing and not query.ranked:
        raise InvalidParameter(
            f"mode={mode.value} needs words to find, not only exclusions.", parameter="q"
        )
    if sort is not None and sort is not Sort.RELEVANCE:
        raise InvalidParameter(
            f"mode={mode.value} ranks by meaning: sort must be relevance (or left out).",
            parameter="sort",
        )
    return replace(flt, mode=mode)


def parse_ids(ids: str | None) -> tuple[int, ...]:
    if ids is None or not ids.strip():
        return ()
    try:
        values = {int(part) for part in ids.split(",") if part.strip()}
    except ValueError:
        raise InvalidParameter("ids must be comma-separated integers.", parameter="ids") from None
    if len(values) > MAX_IDS:
        raise InvalidParameter(f"At most {MAX_IDS} ids per request.", parameter="ids")
    if any(not 1 <= v <= MAX_ID for v in values):
        raise InvalidParameter(f"Each id must be between 1 and {MAX_ID}.", parameter="ids")
    return tuple(sorted(values))


def published_range(
    published_from: str | None, published_to: str | None
) -> tuple[datetime | None, datetime | None]:
    """[start, end) of the two bounds: the first instant `published_from` names, the one
    just past what `published_to` names; InvalidParameter when it would be empty."""
    start: Bound | None = None if published_from is None else parse_bound(published_from)
    end: Bound | None = None if published_to is None else parse_bound(published_to)
    first = None if start is None else start.start
    past = None if end is None else end.end
    if first is not None and past is not None and past <= first:
        raise InvalidParameter(
            "published_from is later than published_to.", parameter="published_from"
        )
    return first, past


def parse_fields(fields: str | None) -> frozenset[str] | None:
    if fields is None:
        return None
    names = {name.strip() for name in fields.split(",") if name.strip()}
    unknown = names - LIST_FIELDS
    if unknown or not names:
        raise InvalidParameter(
            f"Unknown field(s): {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {', '.join(sorted(LIST_FIELDS))}.",
            parameter="fields",
        )
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class ListOptions:
    """What a list of articles shows: the filter (sources included), order, page and extras."""

    flt: ArticleFilter
    sort: Sort | None
    limit: int
    cursor: str | None
    fields: frozenset[str] | None
    content: Content
    count: CountMode
    facets: list[Facet]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request for a page of articles: what it lists and what building it reads."""

    request: Request  # its URL makes the links; its query string keys the kept reply
    session: Session
    settings: Settings
    cache: RevisionCache
    options: ListOptions
