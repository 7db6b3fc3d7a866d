"""The API trusts the realms the environment file says, on a real Keycloak: a token of a
second realm marked `api: true` is accepted, one of a realm left untrusted is a 401 naming
its issuer."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conceptor.activities.realm_file import load_realm
from conceptor.api.main import create_app
from conceptor.platform.dev_tokens import password_grant_token
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.keycloak_tokens import admin_token
from tests.api_helpers import dev_user

pytestmark = pytest.mark.integration


@pytest.fixture
async def realms(local_stack: LocalStack) -> AsyncIterator[tuple[str, str]]:
    """Two realms made from the shipped realm file: (trusted, untrusted) names."""
    settings = local_stack.settings
    tag = uuid.uuid4().hex[:8]
    names = (f"partners-{tag}", f"vendors-{tag}")
    shipped = load_realm(settings.realm_file, settings)
    async with httpx.AsyncClient(timeout=60) as http:
        headers = {"authorization": f"Bearer {await admin_token(settings, http)}"}
        try:
            for name in names:
                body = {**json.loads(json.dumps(shipped)), "realm": name}
                body.pop("id", None)
                resp = await http.post(
                    f"{settings.keycloak_url}/admin/realms", json=body, headers=headers
                )
                assert resp.status_code == 201, resp.text
            yield names
        finally:
            headers = {"authorization": f"Bearer {await admin_token(settings, http)}"}
            for name in names:
                await http.delete(f"{settings.keycloak_url}/admin/realms/{name}", headers=headers)


def test_a_second_trusted_realms_token_is_accepted_an_untrusted_one_refused(
    local_stack: LocalStack,
    realms: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = local_stack.settings
    trusted, untrusted = realms
    file = tmp_path / "environment.yaml"
    file.write_text(
        "apiVersion: conceptor/v1\n"
        "realms:\n"
        f"  - {{name: {settings.realm_name}, file: {settings.realm_file}}}\n"
        f"  - {{name: {trusted}, file: {settings.realm_file}, api: true}}\n"
        f"  - {{name: {untrusted}, file: {settings.realm_file}}}\n"
    )
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    user = dev_user(settings, admin=False)

    def token_of(realm: str) -> str:
        as_realm = settings.model_copy(update={"realm_name": realm})
        return password_grant_token(as_realm, user.username, user.password)

    good, bad = token_of(trusted), token_of(untrusted)
    with TestClient(create_app(settings)) as api:
        accepted = api.get("/api/workers", headers={"authorization": f"Bearer {good}"})
        refused = api.get("/api/workers", headers={"authorization": f"Bearer {bad}"})
        absent = api.get("/api/workers")
    assert accepted.status_code == 200, accepted.text
    assert list(accepted.json()) == ["queues"]
    issuer = f"{settings.keycloak_url}/realms/{untrusted}"
    assert (refused.status_code, refused.json()) == (
        401,
        {
            "detail": f"token issuer '{issuer}' is not a realm the API trusts "
            f"(trusted realms: {settings.realm_name}, {trusted})"
        },
    )
    assert absent.status_code == 401
