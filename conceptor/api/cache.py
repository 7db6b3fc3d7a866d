"""A read cache in Redis shared by every API process: one computation per TTL across them all."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from conceptor.platform.logging import get_logger

KEY_PREFIX = "conceptor:cache:"
CACHE_HEADER = "X-Cache"
log = get_logger("conceptor.api.cache")
# How often a process waiting for another one's computation looks for its result.
_POLL_SECONDS = 0.025

# Store the value and drop the computation lock in one step, the lock only while it is ours.
_STORE = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
# Look up and, on a miss, take the lock in one step: a value stored between a separate GET
# and SET NX would otherwise be computed a second time.
_FOUND, _LOCKED = 1, 2
_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value then
  return {1, value, redis.call('PTTL', KEYS[1])}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2}
end
return {0}
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

CacheState = Literal["hit", "miss", "off"]


@dataclass(frozen=True)
class Cached:
    """A body and where it came from: `hit` (Redis), `miss` (computed here), `off` (no cache)."""

    body: bytes
    state: CacheState
    age_seconds: int = 0


class SharedCache:
    """One value under one key, recomputed at most once per `ttl_seconds` across processes.

    Semantics: a value is served for at most `ttl_seconds` after it was computed (no later
    change shortens that unless `invalidate` is called). On a miss, one process takes the
    computation lock (SET NX with an expiry, in case it dies) and computes; the others wait for
    its value and serve it as a hit. Within a process, concurrent readers share one lookup.
    Redis unreachable: every reader computes for itself (`off`), the value is still served.
    `ttl_seconds` 0 turns the cache off.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        name: str,
        ttl_seconds: float,
        lock_seconds: float = 10.0,
    ) -> None:
        self._redis = redis
        self.key = f"{KEY_PREFIX}{name}"
        self.lock_key = f"{KEY_PREFIX}{name}:lock"
        self._ttl_ms = math.ceil(ttl_seconds * 1000)
        self._lock_ms = math.ceil(lock_seconds * 1000)
        self._claim = redis.register_script(_CLAIM)
        self._store = redis.register_script(_STORE)
        self._unlock = redis.register_script(_UNLOCK)
        # The lookup in flight in this process: concurrent readers share it.
        self._inflight: asyncio.Future[Cached] | None = None

    @property
    def enabled(self) -> bool:
        return self._ttl_ms > 0

    async def get(self, compute: Callable[[], Awaitable[bytes]]) -> Cached:
        """The cached body, or `compute()`'s (stored for the others)."""
        if not self.enabled:
            return Cached(await compute(), "off")
        inflight = self._inflight
        leader = inflight is None
        if inflight is None:
            inflight = asyncio.ensure_future(self._get(compute))
            inflight.add_done_callback(self._clear)
            self._inflight = inflight
        # shield: one reader going away (client disconnect) must not cancel the others' lookup.
        cached = await asyncio.shield(inflight)
        # A reader that joined another's computation did not compute: to it, that is a hit.
        return cached if leader or cached.state != "miss" else replace(cached, state="hit")

    def _clear(self, done: asyncio.Future[Cached]) -> None:
        if self._inflight is done:
            self._inflight = None

    async def invalidate(self) -> None:
        """Drop the value: the next read computes. A computation already running still stores
        its (older) result, served for at most one TTL."""
        if not self.enabled:
            return
        try:
            await self._redis.delete(self.key)
        except RedisError as exc:  # the value then expires by its TTL
            log.warning("cache invalidation failed", key=self.key, error=str(exc)[:200])

    async def _lookup_or_lock(self, owner: str) -> Cached | bool:
        """The cached value, else whether this reader took the computation lock."""
        found = await self._claim(keys=[self.key, self.lock_key], args=[owner, self._lock_ms])
        if found[0] != _FOUND:
            return bool(found[0] == _LOCKED)
        age = max(0, math.floor((self._ttl_ms - max(int(found[2]), 0)) / 1000))
        return Cached(bytes(found[1]), "hit", age)

    async def _get(self, compute: Callable[[], Awaitable[bytes]]) -> Cached:
        try:
            return await self._get_shared(compute)
        except RedisError as exc:
            log.warning("shared cache unavailable", key=self.key, error=str(exc)[:200])
            return Cached(await compute(), "off")

    async def _get_shared(self, compute: Callable[[], Awaitable[bytes]]) -> Cached:
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self._lock_ms / 1000
        while True:
            found = await self._lookup_or_lock(owner)
            if isinstance(found, Cached):
                return found
            if found:
                break
            if time.monotonic() >= deadline:
                # The computing process is far too slow or gone: do not wait any longer.
                return Cached(await compute(), "miss")
            await asyncio.sleep(_POLL_SECONDS)
        try:
            body = await compute()
        except BaseException:
            with contextlib.suppress(RedisError):  # the lock then expires by itself
                await self._unlock(keys=[self.lock_key], args=[owner])
            raise
        await self._store(keys=[self.key, self.lock_key], args=[owner, body, self._ttl_ms])
        return Cached(body, "miss")
