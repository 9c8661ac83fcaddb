"""JSON responses serialised once, straight from the pydantic model by pydantic-core."""

from collections.abc import AsyncIterator, Mapping

from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

# A body larger than this is sent in chunks of CHUNK_BYTES: the middleware's per-body work
# (gzip above all) then runs a chunk at a time, never holding the event loop for a whole
# huge article. Such a response has no ETag (app/api/caching.py tags single-piece bodies).
WHOLE_BODY_BYTES = 1 << 20
CHUNK_BYTES = 256 << 10


def model_json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def json_bytes_response(body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    """A 200 of JSON `body`, sent whole, or in chunks when large."""
    if len(body) <= WHOLE_BODY_BYTES:
        return Response(body, media_type="application/json", headers=headers)
    return StreamingResponse(_chunks(body), media_type="application/json", headers=headers)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(body), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])


def json_response(
    model: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content=model_json(model),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
