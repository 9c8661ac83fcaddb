"""Log output for the service: text for people, or JSON lines for log shippers.

`configure(settings)` runs in create_app (never at import) and owns the `app` logger tree.
Of uvicorn's loggers it touches only `uvicorn.access`, which our access line replaces.
"""

import logging
import sys
from datetime import UTC, datetime

import orjson

from app.settings import Settings

# Fields that request-scoped records carry (see app/api/request_id.py).
CONTEXT_FIELDS = ("request_id", "method", "path", "status", "duration_ms")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any request fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    """The usual one-liner, with the request id and duration appended when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [
            f"{field}={record.__dict__[field]}"
            for field in ("duration_ms", "request_id")
            if record.__dict__.get(field) is not None
        ]
        return f"{text} {' '.join(extras)}" if extras else text


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is now, so a replaced stream (pytest's) is never stale."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(settings: Settings) -> None:
    """Send the `app` loggers to stderr in the chosen format (idempotent: tests call it often)."""
    logger = logging.getLogger("app")
    handler = StderrHandler()
    handler.setFormatter(JsonLinesFormatter() if settings.log_format == "json" else TextFormatter())
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    uvicorn_access = logging.getLogger("uvicorn.access")
    # uvicorn strips this logger's handlers under --no-access-log; outside uvicorn it has none.
    enabled = settings.access_log
    if enabled is None:
        enabled = bool(uvicorn_access.handlers)
    logging.getLogger("app.access").disabled = not enabled
    if enabled:
        uvicorn_access.disabled = True  # one line per request: ours, which has the request id
