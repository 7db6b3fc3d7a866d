"""Per-user rate limits shared by every API process: a sliding-window log in Redis."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

KEY_PREFIX = "conceptor:ratelimit:"

# A sliding-window log: the user's sorted set holds the times of the requests admitted in the
# last window. One script, so that trimming, counting and admitting are one atomic step for
# every API process, and Redis's own clock (TIME) is the only clock: replicas whose clocks
# differ still count the same window. A refused request is not logged, so a client that keeps
# retrying gets through as soon as the oldest admitted request leaves the window.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True)
class Decision:
    """Whether one request is admitted; when not, how long until the next one would be."""

    allowed: bool
    count: int  # requests in the window, this one included when admitted
    limit: int
    window_seconds: float
    retry_after_seconds: int  # whole seconds, at least 1 when refused (HTTP Retry-After)


class RateLimitedError(Exception):
    """A request over its limit (429 with Retry-After)."""

    def __init__(self, what: str, decision: Decision, setting: str) -> None:
        self.decision = decision
        window = f"{decision.window_seconds:g}"
        super().__init__(
            f"{what} rate limit reached: at most {decision.limit} per {window} s per user "
            f"({setting}); retry in {decision.retry_after_seconds} s"
        )


class RateLimiter:
    """At most `limit` requests per subject in any window of `window_seconds` (0: no limit)."""

    def __init__(
        self, redis: aioredis.Redis, *, name: str, limit: int, window_seconds: float
    ) -> None:
        self._script = redis.register_script(_SCRIPT)
        self._prefix = f"{KEY_PREFIX}{name}:"
        self.limit = limit
        self.window_seconds = window_seconds

    def key(self, subject: str) -> str:
        """The Redis key of one subject's log."""
        return f"{self._prefix}{subject}"

    async def hit(self, subject: str) -> Decision:
        """Count one request of `subject`, unless it is over the limit; RedisError propagates."""
        if self.limit <= 0:
            return Decision(True, 0, 0, self.window_seconds, 0)
        window_us = math.ceil(self.window_seconds * 1_000_000)
        # A unique member: two requests in the same microsecond are two entries.
        member = uuid.uuid4().hex
        admitted, count, wait_us = await self._script(
            keys=[self.key(subject)], args=[self.limit, window_us, member]
        )
        retry_after = 0 if admitted else max(1, math.ceil(int(wait_us) / 1_000_000))
        return Decision(bool(admitted), int(count), self.limit, self.window_seconds, retry_after)
