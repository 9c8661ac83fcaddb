"""The ASGI application factory. Nothing connects or reads settings at import time."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.cors import CORSMiddleware

from app import logs
from app.api import (
    articles,
    changes,
    explorer,
    export,
    fastpath,
    health,
    openapi,
    problems,
    reference,
    sources,
)
from app.api.auth import API_KEY_HEADER, RATE_LIMIT_HEADERS, ApiKeyMiddleware
from app.api.edge import EdgeMiddleware
from app.api.keyring import Keyring
from app.api.parameters import known_parameters
from app.api.replies import ReplyMiddleware
from app.api.request_id import REQUEST_ID_HEADER
from app.api.shedding import Gate
from app.db import make_engine, make_loop_engine, primary_engine
from app.queries.prepared import pair_loop_engine
from app.search.embedder import load_embedder
from app.search.sync import Follower
from app.search.vector_sync import VectorFollower
from app.settings import Settings

API_VERSION = "1.0.0"
# Headers a browser script may read on a cross-origin response.
CORS_EXPOSED_HEADERS = ["Link", "ETag", REQUEST_ID_HEADER, "Retry-After", *RATE_LIMIT_HEADERS]
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (from the environment when omitted, as uvicorn --factory)."""
    settings = settings or Settings()
    logs.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings)
        loop_engine = make_loop_engine(settings)  # PostgreSQL's short reads, on the loop
        if loop_engine is not None:
            pair_loop_engine(app.state.engine, loop_engine)
        # The API's own writes (key usage) go to the primary when the database is a replica.
        app.state.primary_engine = primary_engine(settings)
        # Each worker follows the search index; one per folder writes it (app/search/sync.py).
        app.state.follower = Follower(settings, app.state.engine)
        app.state.follower.start()
        # Search by meaning: the embedder, and the vector index beside the search index.
        app.state.embedder = load_embedder(settings.embedder)
        if app.state.embedder is not None:
            app.state.vector_follower = VectorFollower(
                settings, app.state.engine, app.state.embedder
            )
            app.state.vector_follower.start()
        keyring: Keyring | None = getattr(app.state, "keyring", None)
        if keyring is not None:
            keyring.start(app.state.engine, app.state.primary_engine)
        # What is loaded by now (modules, routes, models, the embedder: ~125,000 objects)
        # lives as long as the worker: kept out of the cyclic GC's full passes, each of which
        # otherwise stalls a request by 50-90 ms on these machines (bench/semantic.py). The
        # collection first, so no garbage of the start is kept for good.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if keyring is not None:
                await keyring.stop()
            app.state.follower.stop()
            vector_follower: VectorFollower | None = getattr(app.state, "vector_follower", None)
            if vector_follower is not None:
                vector_follower.stop()
            app.state.engine.dispose()
            if loop_engine is not None:
                await loop_engine.dispose()
            if app.state.primary_engine is not None:
                app.state.primary_engine.dispose()

    app = FastAPI(
        title="article-corpus",
        version=API_VERSION,
        description="A corpus of news articles: keyset-paged lists, details and sources.",
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name if isinstance(route, APIRoute) else "",
        telemetry=None if settings.opentelemetry else NO_TELEMETRY,
        docs_url=None,  # app/api/reference.py serves /docs without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    problems.install(app)
    # The API's routes refuse query parameters they do not take (app/api/parameters.py);
    # the explorer's page keeps its own state in its URL.
    for api in (articles, sources, changes, export, health):
        app.include_router(api.router, dependencies=[Depends(known_parameters)])
    app.include_router(explorer.router)
    app.include_router(reference.router)
    openapi.install(app)
    install_middleware(app, settings)
    return app


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Every middleware, all pure ASGI. Each add wraps the previous: the last added runs first.
    Three layers by default: the fast reads (app/api/fastpath.py), the reply layer (HEAD,
    shedding, validators, gzip) and the edge (request id, access log, limits); the key check
    and CORS sit between the last two when on."""
    # Off with OpenTelemetry, whose route spans FastAPI's own routes open.
    if settings.fast_reads and not settings.opentelemetry:
        app.add_middleware(fastpath.FastReads, handlers=app.exception_handlers)
    gate = Gate(settings.request_concurrency, settings.queue_timeout_s)
    app.state.load_gate = gate  # its slots, for whoever must see or hold them (tests)
    app.add_middleware(
        ReplyMiddleware,
        gate=gate,
        max_age_s=settings.cache_max_age_s,
        no_store_paths=frozenset(health.PROBE_PATHS),
    )
    if settings.auth == "keys":
        # Inside CORS, so browsers can read its 401s and 429s; ahead of all the work.
        app.state.keyring = Keyring(settings)
        app.add_middleware(ApiKeyMiddleware, keyring=app.state.keyring)
    cors = cors_options(settings)
    if cors is not None:
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(EdgeMiddleware)


def cors_options(settings: Settings) -> dict[str, Any] | None:
    """CORSMiddleware's arguments, or None when no origin is allowed."""
    if not settings.cors_allow_origins:
        return None
    return {
        "allow_origins": settings.cors_allow_origins,
        "allow_methods": ["GET", "HEAD"],
        "allow_headers": ["If-None-Match", REQUEST_ID_HEADER, "Authorization", API_KEY_HEADER],
        "expose_headers": CORS_EXPOSED_HEADERS,
        "max_age": 600,
    }
