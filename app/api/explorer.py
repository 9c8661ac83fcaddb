"""The corpus explorer: the static page at `/` and its two assets under `/explorer/`.

The files live in `app/explorer/` and ship inside the package; they are read once and
served as plain responses, so they pass through the same middleware as the API (ETag,
Cache-Control, gzip, request ids). Not part of the API: kept out of the OpenAPI document.
"""

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import Response

router = APIRouter(include_in_schema=False)

ASSETS = {
    "explorer.css": "text/css; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
}
# The page loads nothing but its own assets and the API on the same origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@cache
def asset(name: str) -> bytes:
    """A file of app/explorer, read on first use (a few KB, then kept)."""
    return files("app").joinpath("explorer", name).read_bytes()


@router.get("/")
async def explorer_page() -> Response:
    return Response(
        asset("index.html"),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("/explorer/{name}")
async def explorer_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404)
    return Response(asset(name), media_type=media_type)
