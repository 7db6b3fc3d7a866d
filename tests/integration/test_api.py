"""The API through the Caddy front-door, against the real stack: routing, auth, provisioning."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from conceptor.api.main import create_app
from conceptor.platform.settings import Settings
from conceptor.workers.runtime import worker_identity
from tests.api_helpers import ApiStack, dev_user, forge_token, password_token
from tests.helpers import assert_eventually
from tests.shipped import ALL_STEPS

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_stack"]

HOSTS = ("localhost", "conceptor.lvh.me")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def front(api: ApiStack) -> httpx.Client:
    return httpx.Client(base_url=f"{api.front_door}/api", timeout=15)


@pytest.mark.parametrize("host", HOSTS)
def test_health_answers_through_front_door_on_each_host(api_stack: ApiStack, host: str) -> None:
    """GET /api/health answers 200 through the front-door for localhost and conceptor.lvh.me."""
    port = api_stack.settings.port("front_door")
    resp = httpx.get(f"{api_stack.front_door}/api/health", headers={"host": f"{host}:{port}"})
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_health_answers_directly_under_api(api_stack: ApiStack) -> None:
    """Straight to uvicorn, the same /api path answers (what the Tilt readiness probe calls)."""
    resp = httpx.get(f"{api_stack.direct}/api/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


@pytest.mark.parametrize("host", HOSTS)
def test_panel_served_at_root_on_each_host(api_stack: ApiStack, host: str) -> None:
    """Everything outside /api goes to the panel."""
    port = api_stack.settings.port("front_door")
    resp = httpx.get(f"{api_stack.front_door}/", headers={"host": f"{host}:{port}"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Conceptor · status</title>" in resp.text


def test_unknown_host_is_not_routed(api_stack: ApiStack) -> None:
    """A host name the front-door does not serve gets Caddy's empty answer, not the API."""
    port = api_stack.settings.port("front_door")
    resp = httpx.get(f"{api_stack.front_door}/api/health", headers={"host": f"example.com:{port}"})
    assert (resp.status_code, resp.text) == (200, "")


def test_ready_reports_each_dependency_up(api_stack: ApiStack) -> None:
    """GET /api/ready: Temporal, PostgreSQL, Redis and MinIO each answered a real call."""
    with front(api_stack) as api:
        resp = api.get("/ready")
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["status"] == "ready"
    assert sorted(body["dependencies"]) == ["minio", "postgres", "redis", "temporal"]
    assert {d["status"] for d in body["dependencies"].values()} == {"up"}
    assert body["dependencies"]["postgres"]["detail"] == "SELECT 1 ok (pool)"
    assert body["dependencies"]["redis"]["detail"] == "PING ok"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ready_is_503_naming_the_dependency_that_is_down(settings: Settings) -> None:
    """With PostgreSQL unreachable, /ready answers 503, postgres `down`, the others `up`."""
    dead = f"postgresql://nobody:nothing@127.0.0.1:{_closed_port()}/nothing"
    app: FastAPI = create_app(
        settings.model_copy(update={"postgres_dsn_override": SecretStr(dead)})
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):

        async def temporal_connected() -> httpx.Response:
            resp = await client.get("/api/ready")
            assert resp.json()["dependencies"]["temporal"]["status"] == "up"
            return resp

        resp = await assert_eventually(temporal_connected, timeout=20)
    body = resp.json()
    assert resp.status_code == 503
    assert body["status"] == "not_ready"
    assert body["dependencies"]["postgres"]["status"] == "down"
    assert body["dependencies"]["postgres"]["detail"].startswith(
        ("ConnectionRefusedError", "OSError")
    )
    assert {k for k, v in body["dependencies"].items() if v["status"] == "up"} == {
        "temporal",
        "redis",
        "minio",
    }


def test_bare_api_path_redirects_to_the_docs(api_stack: ApiStack) -> None:
    """/api without a trailing path is sent to the interactive docs."""
    resp = httpx.get(f"{api_stack.front_door}/api")
    assert resp.status_code == 302
    assert resp.headers["location"] == "/api/docs"


def test_openapi_and_docs_served_under_api(api_stack: ApiStack) -> None:
    """Every path of the schema is under /api; the docs page loads /api/openapi.json."""
    with front(api_stack) as api:
        schema = api.get("/openapi.json").json()
        docs = api.get("/docs")
    assert "servers" not in schema  # the paths carry /api themselves
    assert sorted(schema["paths"]) == [
        "/api/health",
        "/api/links",
        "/api/media",
        "/api/media/{asset_id}",
        "/api/provision",
        "/api/provision/diffs/{ref}",
        "/api/provision/drift",
        "/api/provision/plan",
        "/api/ready",
        "/api/snapshots",
        "/api/snapshots/{name}",
        "/api/snapshots/{name}/restore",
        "/api/status",
        "/api/workers",
    ]
    assert docs.status_code == 200
    assert "'/api/openapi.json'" in docs.text


# ----- auth -------------------------------------------------------------------------------


def _claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": settings.keycloak_issuer,
        "aud": settings.api_client_id,
        "sub": "forged-subject",
        "preferred_username": "mallory",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["platform-admin", "user"]},
    }
    claims.update(overrides)
    return claims


def test_provision_without_token_is_401(api_stack: ApiStack, provisioned: Any) -> None:
    """No Authorization header: 401 with a Bearer challenge."""
    with front(api_stack) as api:
        resp = api.post("/provision")
    assert resp.status_code == 401
    assert resp.json() == {"detail": "missing bearer token"}
    assert resp.headers["www-authenticate"] == 'Bearer realm="technova"'


def test_provision_with_malformed_token_is_401(api_stack: ApiStack, provisioned: Any) -> None:
    """A bearer value that is not a JWT is refused."""
    with front(api_stack) as api:
        resp = api.get("/provision", headers=bearer("not-a-jwt"))
    assert resp.status_code == 401
    assert resp.json()["detail"] == "malformed token: Not enough segments"


def test_provision_with_token_forged_under_unknown_kid_is_401(
    api_stack: ApiStack, provisioned: Any
) -> None:
    """Signed with a foreign key under a key id the realm never published."""
    token = forge_token(_claims(api_stack.settings), kid="forged-kid-1")
    with front(api_stack) as api:
        resp = api.post("/provision", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.json() == {"detail": "token signed with unknown key id 'forged-kid-1'"}


def test_provision_with_token_forged_under_real_kid_is_401(
    api_stack: ApiStack, admin_token: str
) -> None:
    """Signed with a foreign key but claiming the realm's real key id: the signature fails."""
    real_kid = jwt.get_unverified_header(admin_token)["kid"]
    token = forge_token(_claims(api_stack.settings), kid=real_kid)
    with front(api_stack) as api:
        resp = api.post("/provision", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.json() == {"detail": "token rejected: Signature verification failed"}


def test_token_for_another_audience_is_401(api_stack: ApiStack, admin_token: str) -> None:
    """A genuine-looking token whose audience is not conceptor-api is refused."""
    real_kid = jwt.get_unverified_header(admin_token)["kid"]
    token = forge_token(_claims(api_stack.settings, aud="account"), kid=real_kid)
    with front(api_stack) as api:
        resp = api.get("/provision", headers=bearer(token))
    assert resp.status_code == 401


def test_provision_with_expired_token_is_401(api_stack: ApiStack, expired_token: str) -> None:
    """A token the realm really issued, once expired, is refused as expired."""
    with front(api_stack) as api:
        resp = api.get("/provision", headers=bearer(expired_token))
    assert resp.status_code == 401
    assert resp.json() == {"detail": "token has expired"}


def test_start_provision_with_user_token_is_403(api_stack: ApiStack, user_token: str) -> None:
    """A signed-in user without platform-admin may read provisioning but not start it."""
    user = dev_user(api_stack.settings, admin=False)
    with front(api_stack) as api:
        start = api.post("/provision", headers=bearer(user_token))
        read = api.get("/provision", headers=bearer(user_token))
    assert start.status_code == 403
    assert start.json() == {
        "detail": f"role 'platform-admin' required; user {user.username!r} does not have it"
    }
    assert read.status_code == 200
    assert read.json()["state"] == "completed"


async def test_start_provision_with_admin_token_runs_every_step(
    api_stack: ApiStack, admin_token: str, provisioned: Any
) -> None:
    """POST /api/provision starts a new run (202); GET shows it complete, step by step."""
    with front(api_stack) as api:
        started = api.post("/provision", headers=bearer(admin_token))
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["workflow_id"] == "provision"
    assert body["run_id"] != provisioned.run_id
    assert [s["step"] for s in body["steps"]] == list(ALL_STEPS)

    async def completed() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=f"{api_stack.front_door}/api") as api:
            resp = await api.get("/provision", headers=bearer(admin_token))
        status: dict[str, Any] = resp.json()
        assert status["state"] == "completed", status["state"]
        return status

    status = await assert_eventually(completed, timeout=120, interval=0.5)
    assert status["run_id"] == body["run_id"]
    assert {s["step"]: s["state"] for s in status["steps"]} == dict.fromkeys(ALL_STEPS, "completed")
    assert sorted(status["result"]["steps"]) == sorted(ALL_STEPS)


def test_workers_lists_core_and_media_pollers(api_stack: ApiStack, admin_token: str) -> None:
    """GET /api/workers names the worker processes polling each queue."""
    with front(api_stack) as api:
        resp = api.get("/workers", headers=bearer(admin_token))
    assert resp.status_code == 200
    queues = {q["name"]: q for q in resp.json()["queues"]}
    assert sorted(queues) == ["core", "media"]
    for name in ("core", "media"):
        identities = {p["identity"]: p["kinds"] for p in queues[name]["pollers"]}
        assert identities[worker_identity(name, 0)] == ["workflow", "activity"]


def test_status_is_public_and_summarises_provisioning(
    api_stack: ApiStack, provisioned: Any
) -> None:
    """The panel's summary needs no token and lists every step and both queues."""
    with front(api_stack) as api:
        resp = api.get("/status")
    assert resp.status_code == 200
    body = resp.json()
    assert [s["step"] for s in body["provision"]["steps"]] == list(ALL_STEPS)
    assert [q["name"] for q in body["queues"]] == ["core", "media"]
    # The shipped file's card (api.panel_card), filled by the example service's code.
    assert (body["card"]["title"], body["card"]["empty"]) == (
        "Recent media",
        "no uploads yet — POST /api/media",
    )
    assert isinstance(body["card"]["items"], list)


def test_links_point_at_the_tools_of_this_prefix(api_stack: ApiStack) -> None:
    """GET /api/links gives the panel each tool's URL on this port prefix."""
    s = api_stack.settings
    with front(api_stack) as api:
        links = {x["name"]: x["url"] for x in api.get("/links").json()["links"]}
    assert links == {
        "Temporal UI": f"http://localhost:{s.port('temporal_ui')}",
        "Tilt": "http://localhost:10350",
        "Mailpit": f"http://localhost:{s.port('mailpit_ui')}",
        "MinIO console": f"http://localhost:{s.port('minio_console')}",
        "Keycloak admin": f"http://localhost:{s.port('keycloak')}/admin/master/console/#/technova",
        "Database tools": f"http://localhost:{s.port('db_tools')}",
        "API docs": "/api/docs",
    }


def test_password_grant_token_of_admin_carries_roles(api_stack: ApiStack, provisioned: Any) -> None:
    """The realm's dev admin gets a token for conceptor-api with the platform-admin role."""
    settings = api_stack.settings
    token = password_token(settings, dev_user(settings, admin=True))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert settings.api_client_id in (
        claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    )
    assert "platform-admin" in claims["realm_access"]["roles"]
