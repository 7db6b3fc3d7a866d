"""Readiness probes of the API's dependencies: each a real call, bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal

import asyncpg
import httpx
import redis.asyncio as aioredis
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from conceptor.platform.settings import Settings


class DependencyStatus(BaseModel):
    """One dependency's state: `up` or `down`, what the probe saw, and how long it took."""

    status: Literal["up", "down"]
    detail: str
    latency_ms: float


async def check_temporal(client: Client | None) -> str:
    if client is None:
        raise ConnectionError("API not connected to Temporal yet")
    info = await client.workflow_service.get_system_info(
        GetSystemInfoRequest(), timeout=timedelta(seconds=2)
    )
    return f"server {info.server_version or 'answering'}"


async def check_postgres(settings: Settings, db: Any | None = None) -> str:
    """SELECT 1 through the API's pool (what requests use), or a fresh connection without one."""
    if db is not None:
        await db.fetchval("SELECT 1")
        return "SELECT 1 ok (pool)"
    conn = await asyncpg.connect(settings.postgres_dsn, timeout=2)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return "SELECT 1 ok"


async def check_redis(redis: aioredis.Redis) -> str:
    await redis.ping()
    return "PING ok"


async def check_minio(settings: Settings, http: httpx.AsyncClient) -> str:
    resp = await http.get(f"{settings.s3_endpoint}/minio/health/ready", timeout=2)
    if resp.status_code != 200:
        msg = f"/minio/health/ready answered HTTP {resp.status_code}"
        raise ConnectionError(msg)
    return "health/ready ok"


async def probe(check: Callable[[], Awaitable[str]], *, timeout: float) -> DependencyStatus:
    """Run one check; any failure (or the timeout) is `down` with the reason."""
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), timeout=timeout)
        status: Literal["up", "down"] = "up"
    except TimeoutError:
        status, detail = "down", f"no answer within {timeout}s"
    except Exception as exc:  # every failure of a dependency is reported, none is raised
        status, detail = "down", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    latency = round((time.perf_counter() - started) * 1000, 1)
    return DependencyStatus(status=status, detail=detail, latency_ms=latency)
