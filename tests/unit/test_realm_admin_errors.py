"""How the admin client classifies Keycloak's answers: 4xx final and located, the rest retried."""

from __future__ import annotations

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities import keycloak_admin
from conceptor.activities.keycloak_admin import KeycloakAdmin, KeycloakError
from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import Settings


def _admin(status: int, body: str = "{}") -> KeycloakAdmin:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        return httpx.Response(status, text=body)

    settings = Settings(port_prefix="453")  # type: ignore[call-arg]
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return KeycloakAdmin(settings, http, AdminTokens(settings))


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
async def test_server_and_gateway_errors_stay_retryable(status: int) -> None:
    admin = _admin(status)
    with pytest.raises(KeycloakError) as info:
        await admin.call("PUT", "/realms/r/clients/1", json={}, where="clients[0] (client a)")
    assert not isinstance(info.value, ApplicationError)
    assert f"with HTTP {status}" in str(info.value)


async def test_a_4xx_is_final_and_names_where() -> None:
    admin = _admin(400, '{"error":"Empty Space not allowed."}')
    with pytest.raises(ApplicationError) as info:
        await admin.call("POST", "/realms/r/users", json={}, where="users[2] (user zoë)")
    assert info.value.non_retryable
    assert info.value.message == (
        "users[2] (user zoë): Keycloak answered POST /realms/r/users with HTTP 400: "
        '{"error":"Empty Space not allowed."}'
    )


async def test_writes_are_counted_reads_are_not() -> None:
    admin = _admin(200, "{}")
    await admin.call("GET", "/realms/r")
    await admin.read("POST", "/realms/r/partial-export")
    await admin.call("PUT", "/realms/r", json={})
    assert admin.writes == ["PUT /realms/r"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_a_lasting_conflict_on_an_update_stays_retryable(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keycloak_admin, "_CONFLICT_SECONDS", 0.3)
    admin = _admin(409, '{"error":"conflict","error_description":"Duplicate resource error"}')
    with pytest.raises(KeycloakError) as info:
        await admin.call(method, "/realms/r/clients/1", json={}, where="clients[0] (client a)")
    assert not isinstance(info.value, ApplicationError)
    assert "concurrent change" in str(info.value)


async def test_an_update_waits_out_a_concurrent_writer() -> None:
    answers = iter([409, 409, 204])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        return httpx.Response(next(answers))

    settings = Settings(port_prefix="453")  # type: ignore[call-arg]
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    admin = KeycloakAdmin(settings, http, AdminTokens(settings))
    resp = await admin.call("PUT", "/realms/r/clients/1", json={})
    assert resp.status_code == 204
    assert admin.writes == ["PUT /realms/r/clients/1"]


async def test_an_addition_a_concurrent_run_made_first_is_accepted() -> None:
    admin = _admin(409, '{"error":"conflict","error_description":"Duplicate resource error"}')
    resp = await admin.call("POST", "/realms/r/roles-by-id/1/composites", json=[])
    assert resp.status_code == 409  # accepted: the composite is there; verify reads it back
