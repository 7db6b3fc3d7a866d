"""Redis activity: wait until the server answers PING."""

from __future__ import annotations

import redis.asyncio as aioredis
from temporalio import activity

from conceptor.activities.waiting import address_of, wait_for
from conceptor.contracts import StepResult, WaitInput
from conceptor.platform.settings import Settings


class RedisActivities:
    """Activities bound to one settings object."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="wait_for_redis")
    async def wait_for_redis(self, wait: WaitInput) -> StepResult:
        """Until Redis answers PING."""

        async def probe() -> str:
            client = aioredis.from_url(
                self.settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
            try:
                await client.ping()
                info = await client.info("server")
            finally:
                await client.aclose()
            return f"redis {info.get('redis_version', '?')}"

        return await wait_for("redis", address_of(self.settings.redis_url, 6379), probe, wait)
