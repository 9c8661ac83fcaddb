"""/v1/export.jsonl and /v1/export.csv: the corpus, or a filtered part, streamed."""

from collections.abc import Iterator

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from app.api.deps import search_index
from app.api.list_query import ExportQueryDep
from app.api.problems import PROBLEM_RESPONSES
from app.api.replies import is_head
from app.queries.export import MEDIA_TYPES, Format, export_chunks

router = APIRouter(prefix="/v1", tags=["export"], responses=PROBLEM_RESPONSES)


def _stream(request: Request, fmt: Format, query: ExportQueryDep) -> StreamingResponse:
    flt = query.article_filter(query.source_id)
    search = flt.search
    index = None
    if search is not None and not search.matches_nothing:
        index = search_index(request.app.state)
    # The generator opens its own connection: the request's session would be returned to
    # the pool before the body is sent. HEAD gets the headers without the walk.
    chunks: Iterator[bytes] = iter(())
    if not is_head(request):
        engine = request.app.state.engine
        chunks = export_chunks(engine, flt, fmt, index=index, limit=query.limit)
    filename = f"articles.{fmt.value}"
    return StreamingResponse(
        _streamed(chunks),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _streamed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """An empty chunk first: an export is streamed from the start, even an empty one, so
    it never gets a validator and HEAD's headers are GET's (app/api/caching.py)."""
    yield b""
    yield from chunks


@router.get(
    "/export.jsonl",
    operation_id="export_jsonl",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES[Format.JSONL]: {}}, "description": "JSON Lines."}},
)
def export_jsonl(request: Request, query: ExportQueryDep) -> StreamingResponse:
    """Every matching article as one JSON object per line, in article_id order, streamed.

    Each line is an ingestible record: `article_id`, `source_id`, `title`, `content`, and
    the extra fields at the top level as they were ingested. Filters as on /v1/articles.
    """
    return _stream(request, Format.JSONL, query)


@router.get(
    "/export.csv",
    operation_id="export_csv",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES[Format.CSV]: {}}, "description": "CSV."}},
)
def export_csv(request: Request, query: ExportQueryDep) -> StreamingResponse:
    """Every matching article as CSV with a header row, in article_id order, streamed.

    Columns: `article_id, source_id, title, content, extra` (`extra`: the extra fields as
    a JSON object, empty when none). `corpus ingest` reads it back. Filters as on
    /v1/articles.
    """
    return _stream(request, Format.CSV, query)
