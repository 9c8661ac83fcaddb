"""Domain errors. Imports nothing from the web stack: queries and ingest raise these,
and `app/api/problems.py` alone turns them into HTTP problem bodies.

    CorpusError                  (status 500)
    ├── NotFound                 (404) an article or source id that does not exist
    ├── Gone                     (410) an article taken down by `corpus delete`
    ├── InvalidCursor            (400) a cursor that does not parse, was altered, or was
    │                                  made for another filter or sort
    ├── InvalidParameter         (422) a parameter that parses but cannot be honoured
    ├── UnknownParameter         (400) a query parameter the route does not take
    ├── ConfigurationError       (500) a setting names what cannot be loaded (an embedder)
    └── ServiceUnavailable       (503) the database cannot be reached or is saturated
        └── SearchIndexBuilding  (503) the search index has not caught up since start
"""

from datetime import datetime
from typing import Any, ClassVar


class CorpusError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal server error"
    slug: ClassVar[str] = "internal-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, Any]:
        """Members the problem body carries beyond RFC 9457's own."""
        return {}


class NotFound(CorpusError):
    status, title, slug = 404, "Not found", "not-found"


class Gone(CorpusError):
    status, title, slug = 410, "Gone", "gone"

    def __init__(self, detail: str, *, deleted_at: datetime) -> None:
        super().__init__(detail)
        self.deleted_at = deleted_at

    def extensions(self) -> dict[str, Any]:
        # The reason for a takedown is for operators only: never in a response.
        return {"deleted_at": self.deleted_at}


class InvalidCursor(CorpusError):
    status, title, slug = 400, "Invalid cursor", "invalid-cursor"


class InvalidParameter(CorpusError):
    status, title, slug = 422, "Invalid parameter", "invalid-parameter"

    def __init__(self, detail: str, *, parameter: str) -> None:
        super().__init__(detail)
        self.parameter = parameter


class UnknownParameter(CorpusError):
    status, title, slug = 400, "Unknown parameter", "unknown-parameter"

    def __init__(self, suggestions: dict[str, str | None]) -> None:
        """`suggestions`: each unknown name, and the known one it may have meant."""
        first, hint = next(iter(suggestions.items()))
        detail = f"Unknown query parameter {first!r}"
        detail += f"; did you mean {hint!r}?" if hint else "."
        if len(suggestions) > 1:
            detail += f" ({len(suggestions) - 1} more unknown)"
        super().__init__(detail)
        self.suggestions = suggestions


class ConfigurationError(CorpusError):
    title, slug = "Configuration error", "configuration-error"


class ServiceUnavailable(CorpusError):
    status, title, slug = 503, "Service unavailable", "service-unavailable"


class SearchIndexBuilding(ServiceUnavailable):
    title, slug = "Search index building", "search-index-building"
