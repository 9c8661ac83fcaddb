"""The reference for bench/list_api.py: bare Starlette on the same uvicorn, returning a
precomputed JSON body of a given size, so the ratio measures what our service adds.

`BENCH_REF_SIZES` lists the body sizes (bytes) to precompute; a request for
`/{size}/anything...` gets the body of that size.
"""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def body_of(size: int) -> bytes:
    """A valid JSON document of exactly `size` bytes (size >= 10)."""
    return b'{"pad":"' + b"x" * max(0, size - 10) + b'"}'


BODIES = {
    int(size): body_of(int(size))
    for size in os.environ.get("BENCH_REF_SIZES", "1000").split(",")
    if size
}


async def sized(request: Request) -> Response:
    return Response(BODIES[int(request.path_params["size"])], media_type="application/json")


app = Starlette(routes=[Route("/{size:int}/{rest:path}", sized)])
