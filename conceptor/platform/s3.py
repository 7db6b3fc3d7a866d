"""S3 clients for MinIO, built from settings in one place (secrets never leave this process)."""

from __future__ import annotations

import functools
from contextlib import AbstractAsyncContextManager
from typing import Any

from botocore import UNSIGNED
from botocore.config import Config

from conceptor.platform.settings import Settings


@functools.cache
def _session() -> Any:
    """The process's aioboto3 session, made on first use: importing aioboto3 is a third of a
    worker's start-up CPU, and a restarted worker should poll before it pays for it."""
    import aioboto3

    return aioboto3.Session()


def _client_options(settings: Settings, *, anonymous: bool, read_timeout: int) -> dict[str, Any]:
    """Endpoint, region, path-style addressing, bounded timeouts and retries, credentials."""
    options: dict[str, Any] = {
        "endpoint_url": settings.s3_endpoint,
        "region_name": settings.s3_region,
        "config": Config(
            signature_version=UNSIGNED if anonymous else "s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=3,
            read_timeout=read_timeout,
        ),
    }
    if not anonymous:
        options["aws_access_key_id"] = settings.minio_root_user
        options["aws_secret_access_key"] = settings.minio_root_password.get_secret_value()
    return options


def s3_client(settings: Settings, *, anonymous: bool = False) -> AbstractAsyncContextManager[Any]:
    """An async S3 client; `anonymous=True` sends unsigned requests, as a browser would."""
    client: AbstractAsyncContextManager[Any] = _session().client(
        "s3", **_client_options(settings, anonymous=anonymous, read_timeout=30)
    )
    return client


def s3_blocking_client(settings: Settings) -> Any:
    """A synchronous S3 client, for blocking work in a thread or process pool (e.g. image work)."""
    import boto3  # only the processes that do blocking S3 work load it this way

    return boto3.client("s3", **_client_options(settings, anonymous=False, read_timeout=30))
