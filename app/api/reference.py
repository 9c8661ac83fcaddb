"""The interactive API reference at `/docs`: Swagger UI, served by this server.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script, so it
is blank on a host without internet and breaks under a strict Content-Security-Policy.
Here the page (`app/reference/`) loads Swagger UI's files from the `fastapi-offline`
package, same origin, and starts it from a file of ours, under the explorer's policy.
Like the explorer, the files pass through the middleware and stay out of the OpenAPI
document. (There is no `/redoc`: ReDoc injects inline styles, which the policy forbids.)
"""

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.api.explorer import CONTENT_SECURITY_POLICY

router = APIRouter(include_in_schema=False)

PAGE_PATH = "/docs"
# Each asset: the package that ships it, and its media type.
ASSETS = {
    "swagger-ui-bundle.js": ("fastapi_offline", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("fastapi_offline", "text/css; charset=utf-8"),
    "favicon.png": ("fastapi_offline", "image/png"),
    "reference.js": ("app", "text/javascript; charset=utf-8"),
}
_FOLDERS = {"fastapi_offline": "static", "app": "reference"}


@cache
def asset(package: str, name: str) -> bytes:
    """A file the page needs, read on first use and kept."""
    return files(package).joinpath(_FOLDERS[package], name).read_bytes()


@router.get(PAGE_PATH)
async def reference_page() -> Response:
    return Response(
        asset("app", "index.html"),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get(PAGE_PATH + "/{name}")
async def reference_asset(name: str) -> Response:
    found = ASSETS.get(name)
    if found is None:
        raise HTTPException(404)
    package, media_type = found
    return Response(asset(package, name), media_type=media_type)
