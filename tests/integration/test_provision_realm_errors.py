"""Realm errors that say where: a 4xx names the element's JSON path, a 500 on creation is narrowed
to the element, unmanaged differences are refused before any write, transient errors retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from conceptor.client.diffs import read_diff
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.diff_store import diff_store
from tests.integration.provision_realm_support import edit_file, import_realm, realm_env

pytestmark = pytest.mark.integration


async def test_4xx_on_a_write_names_the_json_path(local_stack: LocalStack, tmp_path: Path) -> None:
    """Keycloak refusing a new user fails at once, naming users[2] and quoting Keycloak."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        await import_realm(env)
        edit_file(env, lambda r: r["users"].append({"username": "zoë", "email": "not-an-email"}))
        with pytest.raises(ApplicationError) as info:
            await import_realm(env)
    assert info.value.non_retryable
    assert info.value.type == "RealmRejected"
    assert info.value.message.startswith(
        f"users[2] (user zoë): Keycloak answered POST /realms/{env.realm}/users with HTTP 400: "
    )
    assert "error-invalid-email" in info.value.message


def _insecure_provider(realm: dict[str, Any]) -> None:
    realm["sslRequired"] = "all"
    realm["identityProviders"] = [
        {
            "alias": "corp sso",
            "providerId": "oidc",
            "enabled": True,
            "config": {
                "authorizationUrl": "http://idp.example.invalid/auth",
                "tokenUrl": "http://idp.example.invalid/token",
                "clientId": "conceptor",
                "clientSecret": "not-a-secret",
                "clientAuthMethod": "client_secret_post",
            },
        }
    ]


async def test_500_on_creation_names_the_element(local_stack: LocalStack, tmp_path: Path) -> None:
    """A realm Keycloak cannot create (an http IdP under sslRequired=all) fails non-retryably,
    naming identityProviders[0]; no half-made realm is left behind."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        edit_file(env, _insecure_provider)
        with pytest.raises(ApplicationError) as info:
            await import_realm(env)
        left = await admin.call("GET", "")
    assert info.value.non_retryable
    assert info.value.message.startswith(
        f"realm {env.realm}: Keycloak cannot create it with identityProviders[0] (corp sso) "
        "(HTTP 500: "
    )
    assert info.value.message.endswith("correct that element in the realm file")
    assert left.status_code == 404


async def test_unmanaged_difference_is_refused_before_any_write(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """An identity-provider link added to a user of an existing realm (Keycloak sets those only
    with a new realm) is refused with its path; nothing else of the edit (a role) is written."""

    def edit(realm: dict[str, Any]) -> None:
        realm["roles"]["realm"].append({"name": "auditor"})
        link = {"identityProvider": "corp-sso", "userId": "1", "userName": "alice"}
        realm["users"][0]["federatedIdentities"] = [link]

    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        await import_realm(env)
        edit_file(env, edit)
        with pytest.raises(ApplicationError) as info:
            await import_realm(env)
        role = await admin.call("GET", "/roles/auditor")
    assert info.value.non_retryable
    assert info.value.type == "Unmanaged"
    assert info.value.message == (
        "users[0].federatedIdentities: identity-provider links of user 'alice' are only set "
        "when the realm is created; link the account by logging in through the provider, or "
        "remove the field"
    )
    assert role.status_code == 404


async def test_the_realms_own_export_compares_unchanged(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """The live realm's partial export (built-in flows, components, required actions, scope
    mappings, built-in clients, masked secrets) used as the file: every element unchanged."""
    async with realm_env(local_stack.settings, tmp_path) as (env, admin):
        await import_realm(env)
        export = await admin.partial_export()
        users = edit_file(env, lambda r: None)["users"]
        edit_file(env, lambda r: r.update({**export, "users": users}))
        run = await import_realm(env)
    assert run.writes == []
    assert run.result.outcome == "unchanged"
    counts = run.result.counts
    assert counts["unchanged"] > 100  # the built-ins are compared, not skipped
    assert run.result.diff is not None and run.result.diff.ref is not None
    async with diff_store(local_stack.settings) as store:
        full = await read_diff(store, run.result.diff.ref)  # the result lists 50 at most
    assert full is not None and len(full.changes) == counts["unchanged"]
    kinds = {c.kind for c in full.changes}
    assert {"authentication-flow", "component", "required-action", "client-scope"} <= kinds


async def test_connection_errors_stay_retryable(local_stack: LocalStack, tmp_path: Path) -> None:
    """Keycloak unreachable: the error is not a non-retryable one (Temporal retries it)."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        with pytest.raises(Exception) as info:
            await import_realm(env, keycloak_url_override="http://127.0.0.1:9")
    assert isinstance(info.value, httpx.ConnectError)
    assert not (isinstance(info.value, ApplicationError) and info.value.non_retryable)
