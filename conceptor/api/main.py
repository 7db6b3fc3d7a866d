"""The FastAPI app: per-process clients in the lifespan, routers, limits, error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import redis.asyncio as aioredis
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.types import Scope
from temporalio.service import RPCError

from conceptor.api.auth import JWKSUnavailableError, TokenVerifier, trusted_realms
from conceptor.api.deps import BEARER_SCHEME, PanelCardSource, Resources, bearer_description
from conceptor.api.drift_reads import DriftReader
from conceptor.api.idempotency import (
    IdempotencyInProgressError,
    IdempotencyKeyFormatError,
    IdempotencyMismatchError,
)
from conceptor.api.limits import BodyLimitMiddleware, BodyRule
from conceptor.api.ratelimit import RateLimitedError
from conceptor.api.routes import health, links, provision, snapshots, status, workers
from conceptor.platform import environment
from conceptor.platform.imports import import_target
from conceptor.platform.logging import get_logger
from conceptor.platform.settings import Settings, get_settings
from conceptor.platform.temporal import connect_with_retry

log = get_logger("conceptor.api")
API_PREFIX = "/api"
# The platform's routes; a team's come from the environment file (`api.routers`).
ROUTERS = (health, provision, workers, status, links, snapshots)


class TeamRouterError(RuntimeError):
    """A router the environment file names does not import or is not an APIRouter."""


def team_api(file: Path | None = None) -> tuple[environment.Api, list[APIRouter]]:
    """The environment file's `api` section and the routers it names, imported."""
    path = file or environment.default_file()
    api = environment.load(path).api
    routers: list[APIRouter] = []
    for i, target in enumerate(api.routers):
        try:
            router = import_target(target, path)
        except (ImportError, AttributeError) as exc:
            msg = f"{path}: api.routers[{i}]: importing {target} failed: {exc}"
            raise TeamRouterError(msg) from exc
        if not isinstance(router, APIRouter):
            msg = f"{path}: api.routers[{i}]: {target} is not a fastapi.APIRouter"
            raise TeamRouterError(msg)
        routers.append(router)
    return api, routers


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    http = httpx.AsyncClient(timeout=10)
    redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    # One Temporal client per process; it connects in the background so /api/health answers
    # at once and /api/ready says "down" while Temporal is still starting.
    temporal = asyncio.create_task(
        connect_with_retry(settings, identity=f"api@{socket.gethostname()}")
    )
    # min_size=0: the pool logs in on first use, so the API starts while PostgreSQL does not.
    db = (
        await asyncpg.create_pool(
            settings.postgres_dsn,
            min_size=0,
            max_size=settings.api_postgres_pool_size,
            timeout=5,
            command_timeout=30,
            max_inactive_connection_lifetime=60,
        )
        if settings.api_postgres_pool_size > 0
        else None
    )
    app.state.resources = Resources(
        settings=settings,
        http=http,
        redis=redis,
        verifier=TokenVerifier(settings, http),
        temporal=temporal,
        db=db,
        drift=DriftReader(settings.drift_watch_schedule_id),
        panel_card=app.state.panel_card,
    )
    try:
        yield
    finally:
        temporal.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await temporal
        if db is not None:
            try:
                await asyncio.wait_for(db.close(), timeout=5)
            except TimeoutError:  # a request still holds a connection: do not hang the exit
                db.terminate()
        await redis.aclose()
        await http.aclose()


async def _temporal_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("Temporal call failed", error=str(exc)[:300])
    return JSONResponse(status_code=503, content={"detail": f"Temporal call failed: {exc}"})


async def _jwks_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


async def _dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A dependency failing is not the API's bug: say which call failed and answer 503.
    log.warning("dependency call failed", path=request.url.path, error=repr(exc)[:300])
    detail = f"a dependency is unavailable ({type(exc).__name__}: {str(exc)[:200]})"
    return JSONResponse(status_code=503, content={"detail": detail})


def _redis_address(settings: Settings) -> str:
    # host:port only: a URL may carry a password.
    url = urlsplit(settings.redis_url)
    return f"{url.hostname}:{url.port or 6379}"


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Limits and idempotency keys live in Redis: without it the API refuses rather than guess.
    settings: Settings = request.app.state.settings
    log.warning("Redis call failed", path=request.url.path, error=repr(exc)[:300])
    detail = (
        f"Redis at {_redis_address(settings)}, the API's shared cache (rate limits, idempotency "
        f"keys), is unavailable: {type(exc).__name__}: {str(exc)[:200]}"
    )
    return JSONResponse(status_code=503, content={"detail": detail})


async def _rate_limited(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RateLimitedError):  # registered for that class only
        raise exc
    decision = exc.decision
    retry_after = str(decision.retry_after_seconds)
    return JSONResponse(
        status_code=429,
        content={
            "detail": str(exc),
            "limit": decision.limit,
            "window_seconds": decision.window_seconds,
            "retry_after_seconds": decision.retry_after_seconds,
        },
        headers={"Retry-After": retry_after},
    )


async def _idempotency_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, IdempotencyInProgressError):
        return JSONResponse(
            status_code=409,
            content={"detail": str(exc)},
            headers={"Retry-After": str(exc.retry_after)},
        )
    code = 400 if isinstance(exc, IdempotencyKeyFormatError) else 422
    return JSONResponse(status_code=code, content={"detail": str(exc)})


DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    BotoCoreError,
    ClientError,
)


def _name_the_realms(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document's bearer scheme names the realms the environment file trusts."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        scheme = schema.get("components", {}).get("securitySchemes", {}).get(BEARER_SCHEME)
        if fresh and scheme is not None:
            scheme["description"] = bearer_description(
                trusted_realms(settings), settings.api_client_id
            )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, every route and the docs under /api.

    The prefix is part of the routes (not a proxy-stripped root path), so the same URL
    works straight on uvicorn (Tilt's probe, the benchmark) and through the front-door.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="Conceptor API",
        version="0.1.0",
        description="Provisioning, worker status and the team's routes of the Conceptor "
        "environment.",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=f"{API_PREFIX}/redoc",
        openapi_url=f"{API_PREFIX}/openapi.json",
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    api, team_routers = team_api()
    card = api.panel_card
    app.state.panel_card = (
        PanelCardSource(title=card.title, empty=card.empty, items=import_target(card.items))
        if card is not None
        else None
    )
    _name_the_realms(app, settings)

    upload = BodyRule(settings.api_max_upload_bytes, ("multipart/form-data",))
    other = BodyRule(settings.api_max_body_bytes, ("application/json",))
    upload_paths = {f"{API_PREFIX}{p}" for p in api.upload_paths}

    def rule_for(scope: Scope) -> BodyRule:
        return upload if scope["path"] in upload_paths else other

    app.add_middleware(BodyLimitMiddleware, rule_for=rule_for)
    app.add_exception_handler(RPCError, _temporal_unavailable)
    app.add_exception_handler(JWKSUnavailableError, _jwks_unavailable)
    app.add_exception_handler(RedisError, _redis_unavailable)
    app.add_exception_handler(RateLimitedError, _rate_limited)
    for idempotency_error in (
        IdempotencyKeyFormatError,
        IdempotencyMismatchError,
        IdempotencyInProgressError,
    ):
        app.add_exception_handler(idempotency_error, _idempotency_error)
    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, _dependency_unavailable)
    for module in ROUTERS:
        app.include_router(module.router, prefix=API_PREFIX)
    for router in team_routers:
        app.include_router(router, prefix=API_PREFIX)
    return app
