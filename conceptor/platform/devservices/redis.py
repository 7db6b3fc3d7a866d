"""Redis: an in-memory dev server on the prefix's port."""

from __future__ import annotations

from pathlib import Path

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.settings import Settings
from conceptor.platform.tools import system_tool


def command(settings: Settings, data_dir: Path) -> list[str]:
    return [
        str(system_tool("redis-server")),
        "--port",
        str(settings.port("redis")),
        "--bind",
        settings.host,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--protected-mode",
        "no",
    ]


async def probe(settings: Settings) -> str:
    # Imported here: `conceptor dev …` stays quick to start when it only needs other services.
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        info = await client.info("server")
    except (RedisError, OSError) as exc:
        raise NotReadyError(f"PING failed: {exc}") from exc
    finally:
        await client.aclose()
    return f"redis {info.get('redis_version', '?')}"


SERVICE = DevService(
    name="redis",
    description="Redis",
    ports=("redis",),
    command=command,
    probe=probe,
)
