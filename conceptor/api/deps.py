"""FastAPI dependencies: shared resources, the Temporal client, the verified user, roles."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from conceptor.api.auth import InvalidTokenError, JWKSUnavailableError, TokenVerifier, User
from conceptor.api.cache import SharedCache
from conceptor.api.drift_reads import DriftReader
from conceptor.api.provision_reads import ProvisionReader
from conceptor.platform.settings import Settings

PLATFORM_ADMIN = "platform-admin"


@dataclass(frozen=True)
class PanelCardSource:
    """The environment file's `api.panel_card`, its items' callable imported."""

    title: str
    empty: str
    items: Callable[[Resources], Awaitable[list[Any]]]


@dataclass
class Resources:
    """Per-process clients, created once in the app's lifespan."""

    settings: Settings
    http: httpx.AsyncClient
    redis: aioredis.Redis
    verifier: TokenVerifier
    temporal: asyncio.Task[Client]
    # asyncpg.Pool, or None when CENTRAL_API_POSTGRES_POOL_SIZE=0 (a connection per call).
    db: Any | None = None
    provision: ProvisionReader = field(default_factory=ProvisionReader)
    drift: DriftReader = field(default_factory=DriftReader)
    # The panel's team card, filled by the team's code (environment file `api.panel_card`).
    panel_card: PanelCardSource | None = None
    # The shared cache layer in Redis (README "Shared cache layer"): the status read cache
    # is the platform's; a team's routes keep their limiters and idempotency stores (built
    # on `redis` with conceptor.api.ratelimit / .idempotency) in `extensions`, one per process.
    status_cache: SharedCache = field(init=False)
    extensions: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status_cache = SharedCache(
            self.redis, name="status", ttl_seconds=self.settings.api_status_cache_seconds
        )

    def temporal_client(self) -> Client | None:
        """The client once connected, else None (the connection retries in the background)."""
        task = self.temporal
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
        return None


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_settings_dep(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_temporal_client(resources: ResourcesDep) -> Client:
    client = resources.temporal_client()
    if client is None:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"not connected to Temporal at {resources.settings.temporal_address} yet",
        )
    return client


TemporalClientDep = Annotated[Client, Depends(get_temporal_client)]


def get_db(resources: ResourcesDep) -> Any | None:
    return resources.db


DatabaseDep = Annotated[Any | None, Depends(get_db)]

BEARER_SCHEME = "keycloak"
# create_app names the realms in the OpenAPI document (bearer_description): the environment
# file's, which this module does not read at import.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER_SCHEME,
    description="An access token of a realm the API trusts (the environment file's realms).",
)


def bearer_description(realms: list[str], client_id: str) -> str:
    """The OpenAPI description of the bearer scheme: the realms whose tokens the API takes."""
    names = ", ".join(realms) or "none declared"
    return f"An access token of realm(s) {names} (password grant, client {client_id})."


def _unauthorized(detail: str, realms: list[str]) -> HTTPException:
    # RFC 6750's realm: the trusted realm(s) of the environment file, as the verifier has them.
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": f'Bearer realm="{", ".join(realms)}"'},
    )


async def get_current_user(
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    realms = resources.verifier.realms
    if credentials is None:
        raise _unauthorized("missing bearer token", realms)
    try:
        return await resources.verifier.verify(credentials.credentials)
    except InvalidTokenError as exc:
        raise _unauthorized(str(exc), realms) from exc
    except JWKSUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(role: str) -> Callable[[User], Awaitable[User]]:
    """A dependency that lets through only users holding realm role `role` (else 403)."""

    async def check(user: CurrentUser) -> User:
        if role not in user.roles:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"role {role!r} required; user {user.username!r} does not have it",
            )
        return user

    return check


AdminUser = Annotated[User, Depends(require_role(PLATFORM_ADMIN))]
