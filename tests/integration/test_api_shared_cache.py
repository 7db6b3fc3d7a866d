"""Two API processes behind one front-door share Redis: upload limits, idempotency, status cache.

Both processes and their front-door are started here (the real `conceptor api serve --port`
and the real Caddyfile with two API upstreams), on Redis database 3 of the test stack, so no
other API of the session shares their counters. Ports: the prefix's 03 and 04 (the two APIs),
05 and 06 (the front-door and its admin), 07 (an API whose Redis, on 08, is not running).
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import redis
from PIL import Image

from conceptor.api.cache import KEY_PREFIX as CACHE_PREFIX
from conceptor.api.idempotency import (
    Claim,
    IdempotencyInProgressError,
    IdempotencyMismatchError,
    IdempotencyStore,
    StoredResponse,
)
from conceptor.api.ratelimit import KEY_PREFIX as RATELIMIT_PREFIX
from conceptor.api.ratelimit import RateLimiter
from conceptor.platform.devservices import front_door
from conceptor.platform.settings import Settings
from tests.api_helpers import LOG_DIR, Processes, answers
from tests.helpers import assert_eventually, wait_until

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_stack"]

LIMIT = 3
WINDOW_SECONDS = 300  # longer than this module runs: the window never slides under a test
STATUS_TTL_SECONDS = 6
REDIS_DB = 3


@dataclass(frozen=True)
class Replicas:
    """Where the two API processes answer, directly and through their front-door."""

    front: str  # http://localhost:<05>/api
    direct: dict[str, str]  # upstream "host:port" -> http://host:port/api
    redis: redis.Redis
    settings: Settings

    def other(self, upstream: str) -> str:
        """The direct URL of the process that is not `upstream`."""
        [url] = [url for name, url in self.direct.items() if name != upstream]
        return url


def _port(settings: Settings, offset: int) -> int:
    return int(settings.port_prefix) * 100 + offset


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (seed % 256, 90, 160)).save(out, format="PNG")
    return out.getvalue()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def subject(token: str) -> str:
    """Whom the API counts a token's uploads for (as conceptor.api.auth reads it)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return str(claims.get("sub") or claims["preferred_username"])


def temporal_up(url: str) -> bool:
    """The process reached Temporal (its status would otherwise lack provisioning)."""
    try:
        deps = httpx.get(f"{url}/ready", timeout=5).json()["dependencies"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(deps["temporal"]["status"] == "up")


@pytest.fixture(scope="module")
def replicas(settings: Settings, stack_env: dict[str, str], provisioned: Any) -> Iterator[Replicas]:
    """API processes on the prefix's 03 and 04, a front-door on 05 balancing over both."""
    host = settings.host
    redis_url = f"redis://{host}:{settings.port('redis')}/{REDIS_DB}"
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    env = {
        **stack_env,
        "CENTRAL_REDIS_URL": redis_url,
        "CENTRAL_API_UPLOAD_RATE_LIMIT": str(LIMIT),
        "CENTRAL_API_UPLOAD_RATE_WINDOW_SECONDS": str(WINDOW_SECONDS),
        "CENTRAL_API_STATUS_CACHE_SECONDS": str(STATUS_TTL_SECONDS),
    }
    procs = Processes(env)
    ports = (_port(settings, 3), _port(settings, 4))
    upstreams = [f"{host}:{port}" for port in ports]
    for name, port in zip(("api-a", "api-b"), ports, strict=True):
        procs.spawn(name, "api", "serve", "--port", str(port))
    # The real Caddyfile, driven as `conceptor dev serve front-door` drives it, with both APIs
    # as its upstream (comma-separated, as a person would write the setting).
    two = settings.model_copy(update={"front_door_api_upstream": ",".join(upstreams)})
    data_dir = LOG_DIR / "front-door-replicas"
    data_dir.mkdir(parents=True, exist_ok=True)
    front_port, admin_port = _port(settings, 5), _port(settings, 6)
    caddy_env = {
        **os.environ,
        **front_door.environ(two, data_dir),
        "FRONT_DOOR_PORT": str(front_port),
        "CADDY_ADMIN": f"{host}:{admin_port}",
    }
    assert caddy_env["API_UPSTREAM"] == " ".join(upstreams)
    with open(LOG_DIR / "front-door-replicas.log", "ab") as log:
        caddy = subprocess.Popen(
            front_door.command(two, data_dir),
            env=caddy_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        direct = {up: f"http://{up}/api" for up in upstreams}
        for name, url in zip(("api-a", "api-b"), direct.values(), strict=True):
            wait_until(
                partial(lambda n, u: procs.alive(n) and temporal_up(u), name, url),
                timeout=60,
                message=f"{name} not answering; log in {LOG_DIR}/{name}.log",
            )
        front = f"http://localhost:{front_port}/api"
        wait_until(
            lambda: caddy.poll() is None and answers(f"{front}/health"),
            timeout=30,
            message=f"front-door not answering; log in {LOG_DIR}/front-door-replicas.log",
        )
        yield Replicas(front=front, direct=direct, redis=store, settings=settings)
    finally:
        caddy.send_signal(signal.SIGTERM)
        try:
            caddy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            caddy.kill()
            caddy.wait()
        procs.stop()
        store.flushdb()
        store.close()


@pytest.fixture
def fresh(replicas: Replicas) -> Replicas:
    """No counter, key or cached status left by an earlier test."""
    replicas.redis.flushdb()
    return replicas


def upload(
    client: httpx.Client, url: str, token: str, name: str, body: bytes, key: str | None = None
) -> httpx.Response:
    headers = bearer(token) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"{url}/media", files={"file": (name, body, "image/png")}, headers=headers)


async def assets_named(settings: Settings, filename: str) -> list[str]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        rows = await conn.fetch("SELECT id FROM media_assets WHERE filename = $1", filename)
    finally:
        await conn.close()
    return [str(r["id"]) for r in rows]


def test_front_door_balances_over_both_processes(replicas: Replicas) -> None:
    """Round-robin: consecutive requests alternate, and the front-door names who answered."""
    with httpx.Client(timeout=10) as client:
        served = [client.get(f"{replicas.front}/health").headers["x-api-upstream"] for _ in "abcd"]
    assert set(served) == set(replicas.direct)
    assert served[0] != served[1] and served[0] == served[2] and served[1] == served[3]


def test_upload_limit_counts_the_uploads_of_both_processes(
    fresh: Replicas, user_token: str
) -> None:
    """LIMIT uploads spread over both processes; the next, on either, is 429 with Retry-After."""
    started = time.monotonic()
    admitted: list[str] = []
    with httpx.Client(timeout=30) as client:
        for i in range(LIMIT):
            resp = upload(client, fresh.front, user_token, f"limit-{i}.png", png(i))
            assert resp.status_code == 202, resp.text
            admitted.append(resp.headers["x-api-upstream"])
        assert set(admitted) == set(fresh.direct), "both processes admitted uploads"
        refused = upload(client, fresh.front, user_token, "limit-over.png", png(99))
        elapsed = time.monotonic() - started
        assert refused.status_code == 429, refused.text
        by = refused.headers["x-api-upstream"]
        # The refusing process admitted fewer than LIMIT itself: it counted the other's too.
        assert admitted.count(by) < LIMIT
        retry_after = int(refused.headers["retry-after"])
        assert WINDOW_SECONDS - elapsed - 1 <= retry_after <= WINDOW_SECONDS
        body = refused.json()
        assert body["limit"] == LIMIT
        assert body["window_seconds"] == WINDOW_SECONDS
        assert body["retry_after_seconds"] == retry_after
        assert body["detail"] == (
            f"upload rate limit reached: at most {LIMIT} per {WINDOW_SECONDS} s per user "
            "(CENTRAL_API_UPLOAD_RATE_LIMIT / CENTRAL_API_UPLOAD_RATE_WINDOW_SECONDS); "
            f"retry in {retry_after} s"
        )
        # Straight to the process that did not refuse: the same shared count, the same answer.
        again = upload(client, fresh.other(by), user_token, "limit-over-2.png", png(98))
        assert again.status_code == 429, again.text
        assert 1 <= int(again.headers["retry-after"]) <= retry_after
    # One log per user in Redis, holding exactly the admitted uploads.
    key = f"{RATELIMIT_PREFIX}upload:{subject(user_token)}"
    assert fresh.redis.zcard(key) == LIMIT


async def test_sliding_window_admits_again_once_the_oldest_leaves(fresh: Replicas) -> None:
    """The limiter itself on the real Redis: refused until Retry-After, then admitted."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(_url(fresh))
    try:
        limiter = RateLimiter(client, name="window-test", limit=2, window_seconds=2.0)
        who = f"user-{uuid.uuid4().hex[:8]}"
        assert [(await limiter.hit(who)).allowed for _ in range(2)] == [True, True]
        refused = await limiter.hit(who)
        assert (refused.allowed, refused.count) == (False, 2)
        assert 1 <= refused.retry_after_seconds <= 2
        since = time.monotonic()

        async def admitted() -> float:
            decision = await limiter.hit(who)
            assert decision.allowed, decision
            return time.monotonic() - since

        waited = await assert_eventually(admitted, timeout=5, interval=0.1)
        assert waited <= refused.retry_after_seconds + 0.5
    finally:
        await client.aclose()


def _url(replicas: Replicas) -> str:
    s = replicas.settings
    return f"redis://{s.host}:{s.port('redis')}/{REDIS_DB}"


def test_idempotency_key_retried_on_the_other_process_returns_the_first_asset(
    fresh: Replicas, admin_token: str
) -> None:
    """A retry on the other process replays the first answer; the database holds one asset."""
    key = str(uuid.uuid4())
    name = f"idem-{uuid.uuid4().hex[:8]}.png"
    body = png(7)
    with httpx.Client(timeout=30) as client:
        first = upload(client, fresh.front, admin_token, name, body, key)
        assert first.status_code == 202, first.text
        assert first.headers["idempotent-replayed"] == "false"
        other = fresh.other(first.headers["x-api-upstream"])
        retry = upload(client, other, admin_token, name, body, key)
        assert retry.status_code == 202, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json() == first.json()

        changed = upload(client, other, admin_token, name, png(8), key)
        assert changed.status_code == 422, changed.text
        assert changed.json() == {
            "detail": "Idempotency-Key already used with a different request: a retry must "
            "send the same body; use a new key for a new upload"
        }
        bad = upload(client, fresh.front, admin_token, name, body, "short")
        assert bad.status_code == 400, bad.text
        assert bad.json() == {
            "detail": "invalid Idempotency-Key header 'short': use 8 to 128 characters of "
            "A-Z a-z 0-9 . _ : ~ + / = -"
        }
    assert asyncio.run(assets_named(fresh.settings, name)) == [first.json()["id"]]
    # Replays are not uploads: only the first counted against the limit.
    assert fresh.redis.zcard(f"{RATELIMIT_PREFIX}upload:{subject(admin_token)}") == 1


async def test_concurrent_first_requests_with_one_key_create_one_asset(
    fresh: Replicas, admin_token: str
) -> None:
    """Four simultaneous uploads with one key, two on each process: one asset, three replays."""
    key = str(uuid.uuid4())
    name = f"race-{uuid.uuid4().hex[:8]}.png"
    body = png(11)
    urls = [*fresh.direct.values(), *fresh.direct.values()]
    async with httpx.AsyncClient(timeout=30) as client:
        answers_ = await asyncio.gather(
            *(
                client.post(
                    f"{url}/media",
                    files={"file": (name, body, "image/png")},
                    headers=bearer(admin_token) | {"Idempotency-Key": key},
                )
                for url in urls
            )
        )
    assert [a.status_code for a in answers_] == [202] * 4, [a.text for a in answers_]
    assert len({a.json()["id"] for a in answers_}) == 1
    assert sorted(a.headers["idempotent-replayed"] for a in answers_) == [
        "false",
        "true",
        "true",
        "true",
    ]
    assert await assets_named(fresh.settings, name) == [answers_[0].json()["id"]]


async def test_a_key_still_claimed_is_409_with_retry_after_then_released(fresh: Replicas) -> None:
    """The store itself on the real Redis: no wait left is 409; a released key runs afresh."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(_url(fresh))
    try:
        store = IdempotencyStore(
            client, name="claim-test", ttl_seconds=60, lock_seconds=30, wait_seconds=0
        )
        key = str(uuid.uuid4())
        first = await store.begin("user-1", key, "fp-1")
        assert isinstance(first, Claim)
        with pytest.raises(IdempotencyInProgressError) as running:
            await store.begin("user-1", key, "fp-1")
        assert 29 <= running.value.retry_after <= 30
        with pytest.raises(IdempotencyMismatchError):
            await store.begin("user-1", key, "fp-2")
        # Another user's key of the same name is another key.
        assert isinstance(await store.begin("user-2", key, "fp-1"), Claim)
        await store.release(first)
        second = await store.begin("user-1", key, "fp-1")
        assert isinstance(second, Claim) and second.owner != first.owner
        # The first claim is no longer the owner: its answer is not stored over the second's.
        assert await store.complete(first, StoredResponse(202, {"id": "a"})) is False
        assert await store.complete(second, StoredResponse(202, {"id": "b"})) is True
        assert await store.begin("user-1", key, "fp-1") == StoredResponse(202, {"id": "b"})
        assert 59 <= await client.ttl(store.key("user-1", key)) <= 60
    finally:
        await client.aclose()


def test_status_read_on_one_process_is_a_hit_on_the_other(fresh: Replicas) -> None:
    """A miss computes and stores; the other process serves the same bytes as a hit."""
    a, b = fresh.direct.values()
    with httpx.Client(timeout=30) as client:
        first = client.get(f"{a}/status")
        second = client.get(f"{b}/status")
        assert (first.status_code, second.status_code) == (200, 200)
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
        assert second.content == first.content
        assert 0 <= int(second.headers["age"]) <= STATUS_TTL_SECONDS
        assert first.json()["provision"]["state"] == "completed"
        # Through the front-door: the next two reads come from both processes, both hits.
        via = [client.get(f"{fresh.front}/status") for _ in range(2)]
        assert {r.headers["x-api-upstream"] for r in via} == set(fresh.direct)
        assert [r.headers["x-cache"] for r in via] == ["hit", "hit"]
        assert {r.content for r in via} == {first.content}


async def test_one_status_computation_per_ttl_across_processes(fresh: Replicas) -> None:
    """Twelve simultaneous reads on both processes: one computes, eleven are hits; then the TTL."""
    urls = [*fresh.direct.values()] * 6
    async with httpx.AsyncClient(timeout=30) as client:
        reads = await asyncio.gather(*(client.get(f"{url}/status") for url in urls))
        assert [r.status_code for r in reads] == [200] * 12
        assert sorted(r.headers["x-cache"] for r in reads) == ["hit"] * 11 + ["miss"]
        assert len({r.content for r in reads}) == 1
        computed = time.monotonic()

        async def recomputed() -> float:
            resp = await client.get(f"{urls[0]}/status")
            assert resp.headers["x-cache"] == "miss", resp.headers
            return time.monotonic() - computed

        # The value lives its TTL, no longer: the first read after it computes again.
        after = await assert_eventually(recomputed, timeout=STATUS_TTL_SECONDS + 3, interval=0.2)
        assert STATUS_TTL_SECONDS - 1.5 <= after <= STATUS_TTL_SECONDS + 2


def test_an_upload_drops_the_cached_status(fresh: Replicas, admin_token: str) -> None:
    """The panel lists recent uploads: a new one is in the next read, on any process."""
    a, b = fresh.direct.values()
    name = f"fresh-{uuid.uuid4().hex[:8]}.png"
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{a}/status").headers["x-cache"] == "miss"
        assert client.get(f"{b}/status").headers["x-cache"] == "hit"
        created = upload(client, a, admin_token, name, png(21))
        assert created.status_code == 202, created.text
        after = client.get(f"{b}/status")
        assert after.headers["x-cache"] == "miss"
        assert created.json()["id"] in [m["id"] for m in after.json()["card"]["items"]]
    assert fresh.redis.exists(f"{CACHE_PREFIX}status") == 1


@pytest.fixture(scope="module")
def without_redis(settings: Settings, stack_env: dict[str, str], provisioned: Any) -> Iterator[str]:
    """An API process whose Redis (the prefix's 08) is not running."""
    port = _port(settings, 7)
    env = {**stack_env, "CENTRAL_REDIS_URL": f"redis://{settings.host}:{_port(settings, 8)}/0"}
    procs = Processes(env)
    procs.spawn("api-no-redis", "api", "serve", "--port", str(port))
    url = f"http://{settings.host}:{port}/api"
    try:
        wait_until(
            lambda: procs.alive("api-no-redis") and temporal_up(url),
            timeout=60,
            message=f"api-no-redis not answering; log in {LOG_DIR}/api-no-redis.log",
        )
        yield url
    finally:
        procs.stop()


def test_without_redis_uploads_are_503_naming_redis_and_status_still_answers(
    without_redis: str, settings: Settings, admin_token: str
) -> None:
    """Limits and keys cannot be checked: 503 that says Redis; the status is computed uncached."""
    dead = f"{settings.host}:{_port(settings, 8)}"
    with httpx.Client(timeout=30) as client:
        for key in (None, str(uuid.uuid4())):
            resp = upload(client, without_redis, admin_token, "no-redis.png", png(3), key)
            assert resp.status_code == 503, resp.text
            detail = resp.json()["detail"]
            assert detail.startswith(
                f"Redis at {dead}, the API's shared cache (rate limits, idempotency keys), "
                "is unavailable: ConnectionError: "
            ), detail
        status = client.get(f"{without_redis}/status")
        assert status.status_code == 200, status.text
        assert status.headers["x-cache"] == "off"
        assert status.json()["provision"]["state"] == "completed"
