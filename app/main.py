"""The ASGI application factory. Nothing connects or reads settings at import time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import articles, health, problems, sources
from app.db import make_engine
from app.settings import Settings

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for `settings` (from the environment when omitted, as uvicorn --factory)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings)
        try:
            yield
        finally:
            app.state.engine.dispose()

    app = FastAPI(
        title="article-corpus",
        version=API_VERSION,
        description="A corpus of news articles: keyset-paged lists, details and sources.",
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name if isinstance(route, APIRoute) else "",
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(articles.router)
    app.include_router(sources.router)
    app.include_router(health.router)
    return app
