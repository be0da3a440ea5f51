"""The ASGI application: create_app(settings) builds it; `app` is the one uvicorn imports."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute

from app.accounts.rate_limits import create_rate_limiter
from app.background import Background
from app.collector import QuietCollector
from app.config import Settings
from app.db import Database, DatabaseConfigError
from app.graphql.http import GraphQLEndpoint
from app.graphql.ide import ASSETS_PATH, BUNDLE_DIR, GraphiQLAssets, GraphiQLPage
from app.graphql.persisted import create_persisted_operations
from app.graphql.response_cache import create_response_cache
from app.graphql.schema import export_sdl, get_schema
from app.observability import Metrics, RequestContextMiddleware
from app.public import CertificatePages

log = logging.getLogger(__name__)


def _freeze_startup_objects() -> None:
    """Once per process, when the app has started: what exists then (modules, the schema, the
    ORM's mappers, the engine) lives as long as the process, and once frozen the collector's
    full passes no longer walk it. Each full pass stalls every request and delivery of the
    process: measured during a fan-out burst (bench/fanout.py), 150 to 400 ms unfrozen, 50 to
    150 ms frozen."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    graphiql_bundle: Path = BUNDLE_DIR,
) -> Starlette:
    """The whole service for one set of settings; pass `database` to share an engine (tests)."""
    settings = settings or Settings()
    db = database or Database.from_url(settings.database_url, pool=settings.database_pool)
    ide = GraphiQLPage(db, settings, graphiql_bundle)
    if not ide.built:
        log.warning("no GraphiQL bundle in %s: run `make graphiql`", graphiql_bundle)
    metrics = Metrics()
    collector = QuietCollector(on_collected=metrics.full_collections.observe)
    background = Background(db, settings, run_worker=settings.run_worker)
    collector.watch(lambda: background.feed.last_active)
    rate_limiter = create_rate_limiter(
        settings.redis_url,
        settings.rate_limit_per_second,
        settings.rate_limit_burst,
        redis_timeout_seconds=settings.redis_timeout_seconds,
        redis_pause_seconds=settings.redis_pause_seconds,
    )
    persisted = create_persisted_operations(
        settings.redis_url,
        settings.trusted_documents,
        redis_timeout_seconds=settings.redis_timeout_seconds,
        redis_pause_seconds=settings.redis_pause_seconds,
    )
    response_cache = create_response_cache(settings, db.engine, export_sdl())
    graphql = GraphQLEndpoint(
        get_schema(),
        db,
        settings,
        background,
        rate_limiter,
        persisted_operations=persisted,
        ide=ide,
        response_cache=response_cache,
    )
    certificates = CertificatePages(db, settings)

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> JSONResponse:
        try:
            await db.check()
        except DatabaseConfigError as error:
            log.warning("not ready: %s", error)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            async with background.running(), collector.running():
                _freeze_startup_objects()
                yield
        finally:
            await rate_limiter.close()
            await persisted.close()
            if response_cache is not None:
                await response_cache.close()
            if database is None:
                await db.dispose()

    app = Starlette(
        debug=settings.debug,
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            WebSocketRoute("/graphql", graphql),
            Mount(ASSETS_PATH, GraphiQLAssets(graphiql_bundle)),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics.endpoint),
            Route("/certificates/{certificate_id:str}.pdf", certificates.pdf),
            Route("/certificates/{certificate_id:str}", certificates.html),
        ],
        middleware=[Middleware(RequestContextMiddleware, metrics=metrics, collector=collector)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.background = background
    app.state.rate_limiter = rate_limiter
    app.state.persisted_operations = persisted
    app.state.cache_hits = graphql.cache_hits
    return app


app = create_app()
