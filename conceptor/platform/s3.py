"""An S3 client for MinIO, built from settings (secrets never leave this process)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import aioboto3
from botocore import UNSIGNED
from botocore.config import Config

from conceptor.platform.settings import Settings

_SESSION = aioboto3.Session()


def s3_client(settings: Settings, *, anonymous: bool = False) -> AbstractAsyncContextManager[Any]:
    """An async S3 client; `anonymous=True` sends unsigned requests, as a browser would."""
    config = Config(
        signature_version=UNSIGNED if anonymous else "s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=3,
        read_timeout=30,
    )
    creds: dict[str, str] = {}
    if not anonymous:
        creds = {
            "aws_access_key_id": settings.minio_root_user,
            "aws_secret_access_key": settings.minio_root_password.get_secret_value(),
        }
    client: AbstractAsyncContextManager[Any] = _SESSION.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        config=config,
        **creds,
    )
    return client
