"""MinIO: the S3 server built from its Go module, with its console."""

from __future__ import annotations

from pathlib import Path

import httpx

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.http import client as http_client
from conceptor.platform.settings import Settings
from conceptor.platform.tools import cached_tool


def command(settings: Settings, data_dir: Path) -> list[str]:
    minio = cached_tool("minio", "MINIO_VERSION", "bin/minio")
    return [
        str(minio),
        "server",
        str(data_dir / "data"),
        "--address",
        f"{settings.host}:{settings.port('minio')}",
        "--console-address",
        f"{settings.host}:{settings.port('minio_console')}",
        "--quiet",
    ]


def environ(settings: Settings, _data_dir: Path) -> dict[str, str]:
    return {
        "MINIO_ROOT_USER": settings.minio_root_user,
        "MINIO_ROOT_PASSWORD": settings.minio_root_password.get_secret_value(),
        "MINIO_UPDATE": "off",
        "MINIO_CALLHOME_ENABLE": "off",
        "MINIO_BROWSER_REDIRECT": "off",
    }


async def probe(settings: Settings) -> str:
    # Imported here: `conceptor dev …` stays quick to start when it only needs other services.
    from conceptor.platform.s3 import s3_client

    try:
        async with http_client(timeout=3) as http:
            health = await http.get(f"{settings.s3_endpoint}/minio/health/ready")
        if health.status_code != 200:
            raise NotReadyError(f"/minio/health/ready answered {health.status_code}")
        async with s3_client(settings) as s3:
            buckets = await s3.list_buckets()
    except (httpx.HTTPError, OSError) as exc:
        raise NotReadyError(f"MinIO not answering: {exc}") from exc
    except Exception as exc:  # botocore raises many types while the server initialises
        raise NotReadyError(f"S3 ListBuckets failed: {exc}") from exc
    return f"S3 ListBuckets ok ({len(buckets.get('Buckets', []))} buckets)"


SERVICE = DevService(
    name="minio",
    description="MinIO S3 + console",
    ports=("minio", "minio_console"),
    command=command,
    environ=environ,
    probe=probe,
    links={"MinIO console": "http://localhost:{minio_console}"},
)
