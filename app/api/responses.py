"""JSON responses serialised once, straight from the pydantic model by pydantic-core."""

from collections.abc import Mapping

from pydantic import BaseModel
from starlette.responses import Response


def model_json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def json_response(
    model: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        content=model_json(model),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
