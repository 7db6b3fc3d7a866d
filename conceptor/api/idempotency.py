"""`Idempotency-Key`: the first answer to a key is kept in Redis and replayed to its retries."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
KEY_PREFIX = "conceptor:idempotency:"
# A UUID fits, and so do most clients' own schemes; short keys collide, so at least 8.
_KEY_FORMAT = re.compile(r"[A-Za-z0-9._:~+/=-]{8,128}")
KEY_FORMAT_TEXT = "8 to 128 characters of A-Z a-z 0-9 . _ : ~ + / = -"
# Poll interval of a request waiting for the first one with its key.
_POLL_SECONDS = 0.05

# Write the final answer only while the claim is still ours: a claim that outlived its lock
# (and was taken by another request) must not be overwritten with a second asset's answer.
_COMPLETE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['owner'] == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['owner'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class IdempotencyKeyFormatError(ValueError):
    """The header's value is not a key we accept (400)."""

    def __init__(self, value: str) -> None:
        super().__init__(f"invalid {HEADER} header {value[:40]!r}: use {KEY_FORMAT_TEXT}")


class IdempotencyMismatchError(Exception):
    """The key was first used with another request body (422)."""

    def __init__(self) -> None:
        super().__init__(
            f"{HEADER} already used with a different request: a retry must send the same "
            "body; use a new key for a new upload"
        )


class IdempotencyInProgressError(Exception):
    """The first request with this key is still running (409 with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"a request with this {HEADER} is still in progress; retry in {retry_after} s"
        )


def validate_key(value: str) -> str:
    """The key, or IdempotencyKeyFormatError."""
    if _KEY_FORMAT.fullmatch(value) is None:
        raise IdempotencyKeyFormatError(value)
    return value


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what identifies a request's content (each part length-prefixed)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    """The first request's answer: status code and JSON body."""

    status_code: int
    body: Any


@dataclass(frozen=True)
class Claim:
    """This request owns the key: it does the work, then completes or releases the claim."""

    key: str
    owner: str
    fingerprint: str


class IdempotencyStore:
    """Claims and answers per (scope, key), shared by every API process through Redis.

    The first request claims the key with SET NX (a lock with an expiry, so a crashed process
    cannot hold it forever), does the work, and replaces the claim with its answer for
    `ttl_seconds`. A request that finds a claim with the same fingerprint waits up to
    `wait_seconds` for the answer; one with another fingerprint is refused. A failed first
    request releases its claim, so its retry runs afresh.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        name: str,
        ttl_seconds: float,
        lock_seconds: float,
        wait_seconds: float,
    ) -> None:
        self._redis = redis
        self._prefix = f"{KEY_PREFIX}{name}:"
        self._ttl_ms = math.ceil(ttl_seconds * 1000)
        self._lock_ms = math.ceil(lock_seconds * 1000)
        self._wait_seconds = wait_seconds
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)

    def key(self, scope: str, key: str) -> str:
        """The Redis key of one scope's (a user's) idempotency key."""
        return f"{self._prefix}{scope}:{key}"

    async def begin(self, scope: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        """Claim the key, or the stored answer of its first request.

        Raises IdempotencyMismatchError (another body), IdempotencyInProgressError (the
        first request is still running after the wait) and RedisError.
        """
        redis_key = self.key(scope, key)
        owner = uuid.uuid4().hex
        claim = json.dumps({"state": "pending", "owner": owner, "fingerprint": fingerprint})
        deadline = time.monotonic() + self._wait_seconds
        while True:
            if await self._redis.set(redis_key, claim, nx=True, px=self._lock_ms):
                return Claim(redis_key, owner, fingerprint)
            raw = await self._redis.get(redis_key)
            if raw is None:
                continue  # the first request released its claim in between: claim it now
            record = json.loads(raw)
            if record["fingerprint"] != fingerprint:
                raise IdempotencyMismatchError
            if record["state"] == "done":
                return StoredResponse(record["status_code"], record["body"])
            if time.monotonic() >= deadline:
                left_ms = await self._redis.pttl(redis_key)
                raise IdempotencyInProgressError(max(1, math.ceil(left_ms / 1000)))
            await asyncio.sleep(_POLL_SECONDS)

    async def complete(self, claim: Claim, response: StoredResponse) -> bool:
        """Keep the answer for its retries; False when the claim had expired and was lost."""
        record = json.dumps(
            {
                "state": "done",
                "owner": claim.owner,
                "fingerprint": claim.fingerprint,
                "status_code": response.status_code,
                "body": response.body,
            }
        )
        stored = await self._complete(keys=[claim.key], args=[claim.owner, record, self._ttl_ms])
        return bool(stored)

    async def release(self, claim: Claim) -> None:
        """Give the key up (the request failed): a retry with it starts afresh."""
        await self._release(keys=[claim.key], args=[claim.owner])
