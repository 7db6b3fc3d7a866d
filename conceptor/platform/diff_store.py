"""Full diffs kept outside the workflow history: compressed JSON in Redis, by content address.

A step's result carries a bounded diff and the reference of the full one; the worker writes
it here and the CLI and the API read it back, in local and in Kubernetes mode alike (both
reach Redis). The same diff always gets the same reference, so re-runs that find the same
state store nothing new; each write renews the retention.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from conceptor.platform.settings import Settings

KEY_PREFIX = "conceptor:diff:"
_REF = re.compile(r"[0-9a-f]{32}")


def ref_of(text: str) -> str:
    """The reference of a document: 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_ref(value: str) -> bool:
    return _REF.fullmatch(value) is not None


class DiffStore:
    """Put and get documents (JSON text) by reference."""

    def __init__(self, redis: aioredis.Redis, *, retention_seconds: float) -> None:
        self.redis = redis
        self.retention = max(1, int(retention_seconds))

    async def put(self, text: str) -> str:
        ref = ref_of(text)
        # JSON of a realm diff compresses about tenfold: 50 000 users fit in well under 1 MB.
        await self.redis.set(KEY_PREFIX + ref, zlib.compress(text.encode(), 6), ex=self.retention)
        return ref

    async def get(self, ref: str) -> str | None:
        """The document, or None when the reference is unknown (or expired)."""
        if not is_ref(ref):
            return None
        data = await self.redis.get(KEY_PREFIX + ref)
        if data is None:
            return None
        return zlib.decompress(data if isinstance(data, bytes) else data.encode()).decode()


@asynccontextmanager
async def diff_store(settings: Settings) -> AsyncIterator[DiffStore]:
    """A store on its own Redis connection (for a worker's activity or a CLI command)."""
    redis = aioredis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)
    try:
        yield DiffStore(redis, retention_seconds=settings.diff_retention_seconds)
    finally:
        await redis.aclose()
