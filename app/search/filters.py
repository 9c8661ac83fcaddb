"""What a list of articles is narrowed to: sources, id range, ids, dates, bylines, a url,
and a search with its options. A plain value, read by the search index (matching.py) and by
the database's queries (app/queries/filters.py turns it into SQL) alike, so it sits in the
lower of the two packages. Knows nothing of HTTP or SQL.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from app.search import language
from app.search.language import SearchMode, SearchQuery
from app.search.options import ALL_FIELDS, SearchField, Typos


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    source_ids: tuple[int, ...] = ()
    id_min: int | None = None
    id_max: int | None = None
    ids: tuple[int, ...] = ()
    q: str | None = None  # search text; blank means no search
    # Published in [published_from, published_before): undated articles never match.
    published_from: datetime | None = None
    published_before: datetime | None = None
    authors: tuple[str, ...] = ()  # any of these bylines, exactly
    url: str | None = None
    mode: SearchMode = SearchMode.KEYWORD  # how `q` finds articles (no `q`: no effect)
    typos: Typos = Typos.OFF  # whether the search's words forgive typos
    search_in: frozenset[SearchField] = ALL_FIELDS  # the fields the search matches in

    @property
    def search(self) -> SearchQuery | None:
        return language.parse(self.q)

    def fingerprint_parts(self) -> tuple[object, ...]:
        query = self.search
        parts: tuple[object, ...] = (
            sorted(set(self.source_ids)),
            self.id_min,
            self.id_max,
            sorted(set(self.ids)),
            None if query is None else query.canonical(),
        )
        if self.news_narrowed:  # only then: cursors made before these filters stay valid
            dates = (self.published_from, self.published_before)
            parts += (*(None if d is None else d.isoformat() for d in dates), self.url)
            parts += (sorted(set(self.authors)),)
        if self.mode is not SearchMode.KEYWORD:  # only then: keyword cursors stay valid
            parts += (self.mode.value,)
        # Only when set: cursors made before these options stay valid.
        if self.typos is not Typos.OFF:
            parts += (f"typos={self.typos.value}",)
        if self.search_in != ALL_FIELDS:
            parts += (f"search_in={','.join(sorted(self.search_in))}",)
        return parts

    @property
    def news_narrowed(self) -> bool:
        """True when a date, byline or url narrows the rows."""
        return (
            self.published_from is not None
            or self.published_before is not None
            or bool(self.authors)
            or self.url is not None
        )

    @property
    def narrowed(self) -> bool:
        """True when anything beyond the search narrows the rows."""
        return (
            bool(self.source_ids or self.ids)
            or self.id_min is not None
            or (self.id_max is not None)
            or self.news_narrowed
        )


def with_sources(flt: ArticleFilter, source_ids: Sequence[int]) -> ArticleFilter:
    """`flt` narrowed to `source_ids` (none: unchanged)."""
    if not source_ids:
        return flt
    return replace(flt, source_ids=tuple(source_ids))
