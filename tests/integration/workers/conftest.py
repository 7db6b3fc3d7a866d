"""Fixtures for worker tests: the services workers need, schema and buckets, worker spawner."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from conceptor.activities.postgres import PostgresActivities
from conceptor.activities.storage import StorageActivities
from conceptor.platform.devservices.launcher import port_in_use
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import Settings
from conceptor.platform.temporal import connect
from tests.worker_procs import WorkerProc

WORKER_SERVICES = ("postgres", "redis", "temporal", "minio", "mailpit")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="session")
def worker_services(
    request: pytest.FixtureRequest, stack_env: dict[str, str], settings: Settings
) -> Settings:
    """Services workers use (no Keycloak), migrated, with buckets as provisioning makes them.

    Synchronous on purpose: the stack fixtures run their own event loops.
    """
    if os.environ.get("CONCEPTOR_TEST_REUSE_DIR") and port_in_use(
        settings.host, settings.port("temporal")
    ):
        stack = LocalStack(
            settings, env=stack_env, log_dir=ARTIFACTS / "services", services=WORKER_SERVICES
        )
        asyncio.run(stack.wait_ready(WORKER_SERVICES, timeout=60))
    else:
        request.getfixturevalue("local_stack")

    async def provision() -> None:
        env = ActivityEnvironment()
        await env.run(PostgresActivities(settings).migrate_postgres)
        await env.run(StorageActivities(settings).ensure_buckets)

    asyncio.run(provision())
    return settings


@pytest.fixture
async def temporal(worker_services: Settings) -> AsyncIterator[Client]:
    yield await connect(worker_services)


@pytest.fixture
def spawn_worker(
    stack_env: dict[str, str], worker_services: Settings
) -> Iterator[Callable[..., WorkerProc]]:
    """Start real worker processes; every one still running is stopped at teardown."""
    started: list[WorkerProc] = []

    def spawn(queue: str, index: int, **env: str) -> WorkerProc:
        proc = WorkerProc(
            queue,
            index,
            port=worker_port(worker_services, queue, index),
            env={**stack_env, **env},
            log_dir=ARTIFACTS / "workers",
        )
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        proc.terminate()
    for proc in started:
        proc.stop()


def make_image(width: int, height: int, fmt: str = "PNG") -> bytes:
    """A deterministic test picture: gradients and noise, so decoding does real work."""
    grad = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((max(1, width // 4), max(1, height // 4)), 30).resize(
        (width, height)
    )
    image = Image.merge("RGB", (grad, noise, grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    out = io.BytesIO()
    image.save(out, fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 90}))
    return out.getvalue()


@pytest.fixture(scope="session")
def large_png() -> bytes:
    """Big enough that thumbnailing takes seconds: long enough to kill or SIGTERM mid-activity."""
    return make_image(8000, 6000)
