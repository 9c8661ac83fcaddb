"""Cursor links for keyset pages: the next/prev URLs in the body and the Link header."""

from urllib.parse import urlencode

from starlette.requests import Request

from app.api.parameters import is_passed_over
from app.queries import cursor as cursors
from app.queries.articles import Page
from app.queries.cursor import Cursor


def _link_base(request: Request) -> str:
    """This request's URL without its cursor (nor a parameter passed over, such as a cache
    buster), ready for `cursor=...` to be appended."""
    params = [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k != "cursor" and not is_passed_over(k)
    ]
    # ASGI servers now put the mount prefix (root_path) in the path too; older ones did
    # not. Either way the link carries it exactly once. The path is request.url.path
    # without building the whole URL: Starlette escapes these three and nothing else.
    root = request.scope.get("root_path", "")
    path = request.scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    if root and not path.startswith(root):
        path = root + path
    return f"{path}?{urlencode(params)}&" if params else f"{path}?"


def _url(base: str, token: str) -> str:
    # What urlencode would append for ("cursor", token): a token is unpadded base64url,
    # whose characters quote_plus leaves as they are (tests/test_cursor.py).
    return f"{base}cursor={token}"


def page_links(
    request: Request, page: Page, given: Cursor | None, fingerprint: str, secret: str
) -> tuple[str | None, str | None]:
    """URLs of the next and previous pages, carrying every filter of this request."""
    next_key = page.keys[-1] if page.keys and page.has_next else None
    prev_key = page.keys[0] if page.keys and page.has_prev else None
    if not page.keys and given is not None:
        # An empty page reached by cursor: offer the way back to where the rows are.
        if given.direction == "after":
            prev_key = given.key
        else:
            next_key = given.key
    next_url = prev_url = None
    base = _link_base(request) if next_key is not None or prev_key is not None else ""
    if next_key is not None:
        next_url = _url(base, cursors.encode(Cursor(next_key, "after", fingerprint), secret))
    if prev_key is not None:
        prev_url = _url(base, cursors.encode(Cursor(prev_key, "before", fingerprint), secret))
    return next_url, prev_url


def link_header(next_url: str | None, prev_url: str | None) -> str | None:
    links = [
        f'<{url}>; rel="{rel}"' for rel, url in (("next", next_url), ("prev", prev_url)) if url
    ]
    return ", ".join(links) or None
