"""Request-size and encoding limits that no route parameter can express, checked by the
outermost layer (app/api/request_id.py) before any parsing.

Each parameter has its own bounds (in `deps.py` and `list_query.py`). These refuse a query
string that is not UTF-8 or holds control characters, and cap the query string and the
headers as a whole, so ten thousand repeated parameters or a megabyte of headers are a
cheap 4xx problem rather than work. (uvicorn's httptools parser has no header limit of its
own; a proxy in front should cap them too, e.g. nginx's large_client_header_buffers.)
"""

import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from starlette.types import Scope

# Room for every parameter at its own limit at once: q's 1,000 characters alone can be
# 12,000 bytes percent-encoded (emoji), plus a 2 KB cursor, 100 source ids and 100 ids.
MAX_QUERY_BYTES = 24_576
MAX_QUERY_PARAMS = 256
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 100
# C0 controls and DEL: no parameter of ours has a use for them. Tabs and line breaks are
# whitespace, which a search pasted from elsewhere may hold (`q` splits words on them).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def query_text_is_clean(query: bytes) -> bool:
    """True when the percent-decoded query string is UTF-8 without control characters
    (other than tabs and line breaks).

    Starlette would silently turn invalid bytes into U+FFFD; we refuse them instead.
    """
    if b"%" not in query and query.isascii():
        return True  # the HTTP parser already refused raw control bytes
    try:
        text = unquote_to_bytes(query).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


class Violation(NamedTuple):
    status: int
    detail: str
    slug: str
    title: str


def violation(scope: Scope) -> Violation | None:
    """The first limit this request breaks, or None when it keeps them all."""
    query: bytes = scope["query_string"]
    if len(query) > MAX_QUERY_BYTES or query.count(b"&") >= MAX_QUERY_PARAMS:
        detail = (
            f"The query string is limited to {MAX_QUERY_BYTES} bytes "
            f"and {MAX_QUERY_PARAMS} parameters."
        )
        return Violation(414, detail, "uri-too-long", "URI too long")
    if not query_text_is_clean(query):
        detail = "The query string must be UTF-8 without control characters."
        return Violation(400, detail, "invalid-query", "Invalid query string")
    headers = scope["headers"]
    if len(headers) > MAX_HEADERS or (sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES):
        detail = (
            f"Request headers are limited to {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes."
        )
        return Violation(431, detail, "headers-too-large", "Request header fields too large")
    return None
