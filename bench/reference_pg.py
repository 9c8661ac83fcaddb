"""The PostgreSQL reference for bench/list_api.py: bare Starlette on the same uvicorn, running
our own list and detail SQL through a small async psycopg pool and answering the rows as
JSON with orjson. The database work is the same on both sides, so the ratio measures what
our service adds around it (routing, parameters, cursors, links, validators, threads).

    BENCH_PG_URL=postgresql://... uvicorn bench.reference_pg:app

`/v1/articles` answers the first page (limit 20) newest first with a cursor link to the
next; `/v1/articles/{id}` one article by id. Both statements are compiled from our own
queries (app/queries/walks.py and articles.py), so the SQL is ours, not a simpler one.
"""

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import create_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.queries.articles import DETAIL_COLUMNS, DETAIL_SELECT, Content
from app.queries.pages import SUMMARY_COLUMNS
from app.queries.walks import LIMIT_NAME, walk_select
from bench import libpq_url

DIALECT = create_engine("postgresql+psycopg://").dialect  # compiles only: never connects
LIST_SQL = str(
    walk_select("id", Content.EXCERPT, True, False, []).compile(
        dialect=DIALECT, compile_kwargs={"render_postcompile": True}
    )
)
DETAIL_SQL = str(DETAIL_SELECT.compile(dialect=DIALECT))
LIST_KEYS = (*SUMMARY_COLUMNS, "excerpt")


async def open_pool(url: str) -> "AsyncConnectionPool[Any]":
    """The reference's small pool of autocommit connections, open."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        libpq_url(url), min_size=4, max_size=8, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    return pool


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = pool = await open_pool(os.environ["BENCH_PG_URL"])
    yield
    await pool.close()


async def fetch(
    pool: "AsyncConnectionPool[Any]", sql: str, params: dict[str, Any]
) -> list[TupleRow]:
    """Every row of one statement, on a connection of the pool."""
    async with pool.connection() as connection:
        cursor = await connection.execute(sql.encode(), params)
        rows: list[TupleRow] = await cursor.fetchall()
        return rows


async def articles(request: Request) -> Response:
    rows = await fetch(request.app.state.pool, LIST_SQL, {LIMIT_NAME: 21})
    items = [dict(zip(LIST_KEYS, row, strict=True)) for row in rows[:20]]
    cursor = base64.urlsafe_b64encode(orjson.dumps([items[-1]["article_id"]])).decode()
    body = {"items": items, "next": f"/v1/articles?cursor={cursor}", "prev": None}
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")


async def article(request: Request) -> Response:
    rows = await fetch(
        request.app.state.pool, DETAIL_SQL, {"article_id": int(request.path_params["id"])}
    )
    if not rows:
        return Response(b'{"status":404}', status_code=404, media_type="application/json")
    body = orjson.dumps(dict(zip(DETAIL_COLUMNS, rows[0], strict=True)), option=orjson.OPT_UTC_Z)
    return Response(body, media_type="application/json")


app = Starlette(
    routes=[Route("/v1/articles", articles), Route("/v1/articles/{id:int}", article)],
    lifespan=lifespan,
)
