"""Full diffs kept outside the workflow history: compressed JSON in Redis, by content address.

A step's result carries a bounded diff and the reference of the full one; the worker writes
it here and the CLI and the API read it back, in local and in Kubernetes mode alike (both
reach Redis). The same diff always gets the same reference, so re-runs that find the same
state store nothing new; each write renews the retention.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import weakref
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis

from conceptor.platform.settings import Settings

KEY_PREFIX = "conceptor:diff:"
_REF = re.compile(r"[0-9a-f]{32}")


def ref_of(text: str) -> str:
    """The reference of a document: 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_ref(value: str) -> bool:
    return _REF.fullmatch(value) is not None


@dataclass(frozen=True)
class Packed:
    """A document ready to store: its reference and its compressed bytes."""

    ref: str
    blob: bytes


def pack(text: str) -> Packed:
    """Reference and compress a document: CPU work, kept apart from the write to Redis.

    JSON of a realm diff compresses about tenfold: 50 000 users fit in well under 1 MB."""
    return Packed(ref_of(text), zlib.compress(text.encode(), 6))


class DiffStore:
    """Put and get documents (JSON text) by reference."""

    def __init__(self, redis: aioredis.Redis, *, retention_seconds: float) -> None:
        self.redis = redis
        self.retention = max(1, int(retention_seconds))

    async def put(self, packed: Packed) -> str:
        await self.redis.set(KEY_PREFIX + packed.ref, packed.blob, ex=self.retention)
        return packed.ref

    async def get(self, ref: str) -> str | None:
        """The document, or None when the reference is unknown (or expired)."""
        if not is_ref(ref):
            return None
        data = await self.redis.get(KEY_PREFIX + ref)
        if data is None:
            return None
        return zlib.decompress(data if isinstance(data, bytes) else data.encode()).decode()


# One client per event loop and Redis URL, for the loop's life. A client per call would be
# collected later, on whichever thread the garbage collector runs, and redis imports modules
# when it collects a connection: inside a workflow's sandbox, that trips its restrictions.
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)


def shared_store(settings: Settings) -> DiffStore:
    """The store on this loop's long-lived client (for a worker's activities)."""
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    url = settings.redis_url
    if url not in clients:
        clients[url] = aioredis.from_url(url, socket_timeout=10, socket_connect_timeout=3)
    return DiffStore(clients[url], retention_seconds=settings.diff_retention_seconds)


@asynccontextmanager
async def diff_store(settings: Settings) -> AsyncIterator[DiffStore]:
    """A store on its own Redis connection, closed after (for a CLI command)."""
    redis = aioredis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)
    try:
        yield DiffStore(redis, retention_seconds=settings.diff_retention_seconds)
    finally:
        await redis.aclose()
