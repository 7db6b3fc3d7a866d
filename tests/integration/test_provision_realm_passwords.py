"""A new realm's plain passwords, hashed by the platform as Keycloak 26 would hash them: the user
logs in with the file's password, and Keycloak holds argon2id with its own default parameters.
What Keycloak must hash itself (a temporary password, a realm that chooses its hashing) reaches
it as the file has it, and Keycloak's own hash is what it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from tests.integration.provision_realm_support import edit_file, import_realm, realm_env
from tests.integration.provision_support import ProvisionEnv, admin_cli_login

pytestmark = pytest.mark.integration

KEYCLOAK_ARGON2 = {
    "hashIterations": 5,
    "algorithm": "argon2",
    "additionalParameters": {
        "hashLength": ["32"],
        "memory": ["7168"],
        "type": ["id"],
        "version": ["1.3"],
        "parallelism": ["1"],
    },
}


def user(name: str, password: str, **credential: Any) -> dict[str, Any]:
    return {
        "username": name,
        "enabled": True,
        "email": f"{name}@example.test",
        "emailVerified": True,
        "firstName": name.title(),
        "lastName": "Test",
        "credentials": [{"type": "password", "value": password, **credential}],
    }


async def stored(env: ProvisionEnv) -> dict[str, dict[str, Any]]:
    """Each user's stored password credential, read through Conceptor's extension (the admin
    API never shows one): its credentialData, and whether it has a salted hash."""
    s = env.settings
    async with httpx.AsyncClient(timeout=30) as http:
        token = await admin_token(s, http)
        resp = await http.get(
            f"{s.keycloak_url}/realms/master/conceptor/realms/{env.realm}/snapshot",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 200, resp.text
    out: dict[str, dict[str, Any]] = {}
    for u in resp.json()["users"]:
        passwords = [c for c in u.get("credentials", []) if c["type"] == "password"]
        if not passwords:
            continue  # a client's service account
        (credential,) = passwords
        secret = json.loads(credential["secretData"])
        out[u["username"]] = {
            "data": json.loads(credential["credentialData"]),
            "hashed": bool(secret.get("value")) and bool(secret.get("salt")),
        }
    return out


async def test_plain_passwords_are_stored_as_keycloak_would_and_log_in(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    async with realm_env(local_stack.settings, tmp_path) as (env, _admin):
        edit_file(
            env,
            lambda data: data["users"].extend(
                [
                    user("carol", "Carol's pässword, long"),
                    user("dave", "dave-once", temporary=True),
                ]
            ),
        )
        run = await import_realm(env)
        assert run.result.outcome == "created"
        assert run.writes == ["POST /realms"]
        held = await stored(env)
        for name in ("alice", "bob", "carol"):
            assert held[name] == {"data": KEYCLOAK_ARGON2, "hashed": True}, name
        assert (await admin_cli_login(env, "carol", "Carol's pässword, long")).status_code == 200
        assert (await admin_cli_login(env, "alice", "alice")).status_code == 200
        wrong = await admin_cli_login(env, "carol", "Carol's password, long")
        assert wrong.status_code == 401, wrong.text
        # The temporary one went to Keycloak as written, and Keycloak hashed it (its realm
        # import gives `temporary` no effect: the password works as it is).
        assert held["dave"] == {"data": KEYCLOAK_ARGON2, "hashed": True}
        assert (await admin_cli_login(env, "dave", "dave-once")).status_code == 200
        assert (await import_realm(env)).result.outcome == "unchanged"


async def test_a_realm_choosing_its_hashing_is_hashed_by_keycloak(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    async with realm_env(local_stack.settings, tmp_path) as (env, _admin):

        def policy(data: dict[str, Any]) -> None:
            data["passwordPolicy"] = "hashAlgorithm(pbkdf2-sha512) and hashIterations(1000)"

        edit_file(env, policy)
        assert (await import_realm(env)).result.outcome == "created"
        held = await stored(env)
        assert held["alice"]["data"]["algorithm"] == "pbkdf2-sha512"
        assert held["alice"]["data"]["hashIterations"] == 1000
        assert (await admin_cli_login(env, "alice", "alice")).status_code == 200
