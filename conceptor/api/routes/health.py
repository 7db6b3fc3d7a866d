"""Liveness and readiness: is the process up, and are its dependencies reachable."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from conceptor.api import readiness
from conceptor.api.deps import ResourcesDep
from conceptor.api.readiness import DependencyStatus

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """`ready` when every dependency is up; each dependency's own status."""

    status: Literal["ready", "not_ready"]
    dependencies: dict[str, DependencyStatus]


@router.get("/health")
async def get_health() -> Health:
    """The API process is alive (no dependency is called)."""
    return Health(status="ok")


@router.get(
    "/ready",
    responses={503: {"model": Readiness, "description": "at least one dependency is down"}},
)
async def get_ready(resources: ResourcesDep, response: Response) -> Readiness:
    """Temporal, PostgreSQL, Redis and MinIO each answer a real call; 503 if any does not."""
    settings = resources.settings
    checks = {
        "temporal": lambda: readiness.check_temporal(resources.temporal_client()),
        "postgres": lambda: readiness.check_postgres(settings, resources.db),
        "redis": lambda: readiness.check_redis(resources.redis),
        "minio": lambda: readiness.check_minio(settings, resources.http),
    }
    timeout = settings.api_dependency_timeout_seconds
    results = await asyncio.gather(*(readiness.probe(c, timeout=timeout) for c in checks.values()))
    deps = dict(zip(checks, results, strict=True))
    ready = all(d.status == "up" for d in deps.values())
    if not ready:
        response.status_code = 503
    return Readiness(status="ready" if ready else "not_ready", dependencies=deps)
