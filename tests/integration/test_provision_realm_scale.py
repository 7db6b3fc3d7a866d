"""Realms of thousands of users: the bulk read of the live realm, imports that re-run with zero
writes, results whose size does not grow with the realm, full diffs reachable by reference."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm import snapshot
from conceptor.activities.realm.diff import compare
from conceptor.activities.realm.normalise import items_of
from conceptor.activities.realm.reconciler import RealmReconciler
from conceptor.activities.realm.snapshot import q, read_live, user_scope
from conceptor.activities.realm_file import load_realm
from conceptor.api.main import create_app
from conceptor.contracts import RESULT_CHANGES, Diff
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import REPO_ROOT
from tests.fixtures.realms.scale import scale_realm
from tests.integration.provision_realm_support import import_realm, realm_env
from tests.integration.provision_support import ProvisionEnv
from tests.integration.test_provision_realm_fixtures import install_fixture

pytestmark = pytest.mark.integration


async def per_user_read(admin: KeycloakAdmin, realm: str) -> dict[str, Any]:
    """The live realm as `read_live` read it before the bulk read: two calls per user."""
    base = f"/realms/{q(realm)}"
    export = await admin.read(
        "POST", f"{base}/partial-export?exportClients=true&exportGroupsAndRoles=true"
    )
    rep: dict[str, Any] = export.json()
    users = await admin.get_json(f"{base}/users?briefRepresentation=false&first=0&max=1000000")
    hidden = [u for u in rep.get("users", []) if u.get("serviceAccountClientId")]
    rep["users"] = [u for u in users if not u.get("serviceAccountClientId")] + hidden
    limit = asyncio.Semaphore(8)

    async def links(user: dict[str, Any]) -> None:
        path = f"{base}/users/{user['id']}"
        async with limit:
            roles = await admin.get_json(f"{path}/role-mappings")
            groups = await admin.get_json(f"{path}/groups?briefRepresentation=true")
        user["realmRoles"] = [r["name"] for r in roles.get("realmMappings", [])]
        user["clientRoles"] = {
            c["client"]: [r["name"] for r in c.get("mappings", [])]
            for c in (roles.get("clientMappings") or {}).values()
        }
        user["groups"] = [g["path"] for g in groups]

    await asyncio.gather(*(links(u) for u in rep["users"] if not u.get("serviceAccountClientId")))
    return rep


# What the admin API's full listing adds that no comparison reads (the bulk read leaves it out).
INFORMATIONAL = ("userProfileMetadata", "access", "totp")


def links_sorted(rep: dict[str, Any]) -> dict[str, Any]:
    """Each user's roles and groups in a fixed order (Keycloak lists a user's mappings in none),
    without what only informs."""
    for user in rep["users"]:
        for key in INFORMATIONAL:
            user.pop(key, None)
        for key in ("realmRoles", "groups"):
            if key in user:
                user[key] = sorted(user[key])
        if "clientRoles" in user:
            user["clientRoles"] = {c: sorted(r) for c, r in sorted(user["clientRoles"].items())}
    return rep


async def both_reads(env: ProvisionEnv) -> tuple[dict[str, Any], dict[str, Any]]:
    """The live realm read in bulk (today's `read_live`) and per user (the reference).

    Also checks the read an import makes, scoped to what comparing the file's users needs
    (brief users unless the file says more of them, only the grants the file makes): it
    finds exactly the changes the whole read finds.
    """
    settings = env.settings
    async with httpx.AsyncClient(timeout=120) as http:
        admin = KeycloakAdmin(settings, http, AdminTokens(settings))
        bulk = await read_live(admin, env.realm, secrets_of=set())
        reference = await per_user_read(admin, env.realm)
        reconciler = RealmReconciler(
            admin, load_realm(settings.realm_file, settings), managed=set()
        )
        scope = user_scope(reconciler.desired)
        scoped = await read_live(admin, env.realm, secrets_of=reconciler.secrets_of, scope=scope)
        whole = await read_live(admin, env.realm, secrets_of=reconciler.secrets_of)
        assert admin.writes == []
    assert bulk is not None and scoped is not None and whole is not None
    found = {
        name: compare(reconciler.target, reconciler.desired, items_of(rep)).diff.changes
        for name, rep in (("scoped", scoped), ("whole", whole))
    }
    assert found["scoped"] == found["whole"]
    assert {c.action for c in found["scoped"]} == {"unchanged"}
    return links_sorted(bulk), links_sorted(reference)


def write_realm(env: ProvisionEnv, users: int) -> dict[str, Any]:
    realm = scale_realm(env.realm, users)
    env.settings.realm_file.write_text(json.dumps(realm))
    return realm


@pytest.mark.parametrize("page", [snapshot._MEMBERS_PAGE, 7])
async def test_bulk_read_equals_the_per_user_read_of_the_large_fixture(
    local_stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int
) -> None:
    """generated-large.json (Keycloak's own export) imported: the bulk read gives exactly what
    two calls per user gave, also with member lists and extension pages of many pages (7
    members, 7 users a page)."""
    monkeypatch.setattr(snapshot, "_MEMBERS_PAGE", page)
    monkeypatch.setattr(snapshot, "_USERS_PAGE", min(page, snapshot._USERS_PAGE))
    monkeypatch.setattr(snapshot, "_BULK_PAGE", min(page, snapshot._BULK_PAGE))
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        data = install_fixture(env, "generated-large.json")
        assert (await import_realm(env)).result.outcome == "created"
        bulk, reference = await both_reads(env)
    users = [u for u in reference["users"] if not u.get("serviceAccountClientId")]
    assert len(users) == len([u for u in data["users"] if not u.get("serviceAccountClientId")])
    assert len(users) > 20
    assert sum(len(u["groups"]) for u in users) >= 20
    assert sum(bool(u["clientRoles"]) for u in users) >= 3
    assert bulk == reference


async def test_bulk_read_equals_the_per_user_read_of_a_generated_realm(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """1 200 users over three user pages, each in groups and subgroups, realm and client roles:
    the same users, in the same order, with the same links, as the per-user read."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        write_realm(env, 1200)
        assert (await import_realm(env)).result.outcome == "created"
        bulk, reference = await both_reads(env)
    assert [u["username"] for u in bulk["users"]] == [f"user-{i:06d}" for i in range(1200)]
    assert bulk == reference


async def imported(env: ProvisionEnv, users: int) -> tuple[int, int, Diff]:
    """Create the realm, then re-run: the serialized sizes of both results and the first diff."""
    write_realm(env, users)
    first = await import_realm(env)
    assert (first.result.outcome, first.writes) == ("created", ["POST /realms"])
    again = await import_realm(env)
    assert (again.result.outcome, again.writes) == ("unchanged", [])
    assert again.result.counts["unchanged"] == first.result.counts["created"]
    assert first.result.diff is not None and again.result.diff is not None
    return (
        len(first.result.model_dump_json()),
        len(again.result.model_dump_json()),
        first.result.diff,
    )


async def test_thousands_of_users_import_rerun_without_writes_bounded_results(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """3 000 users: created with one write, re-run with none; both results list 50 changes at
    most and are as large as those of a realm of 500 users (only the counts' digits grow)."""
    sizes: dict[int, tuple[int, int]] = {}
    for users in (500, 3000):
        async with realm_env(local_stack.settings, tmp_path / str(users)) as (env, _):
            first_size, again_size, diff = await imported(env, users)
        sizes[users] = (first_size, again_size)
        assert len(diff.changes) == RESULT_CHANGES
        # realm, 3 clients, 20 + 15 roles, 40 groups, users: counted whole, 50 of them named.
        total = 1 + 3 + 35 + 40 + users
        assert diff.counts()["created"] == total
        assert diff.left_out == {"create": total - RESULT_CHANGES}
        assert diff.ref is not None
    for small, large in zip(sizes[500], sizes[3000], strict=True):
        assert large - small in range(0, 5), sizes  # a few more digits, nothing per user
    assert max(sizes[3000]) < 12_000


async def test_full_diff_reachable_by_its_ref_through_the_api_and_the_cli(
    local_stack: LocalStack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The ref a result names gives the whole diff: from the API (no token, as the panel links
    it) and from `conceptor provision --diff REF --out FILE`; an unknown ref is a 404."""
    async with realm_env(local_stack.settings, tmp_path) as (env, _):
        write_realm(env, 600)
        run = await import_realm(env)
    assert run.result.diff is not None and run.result.diff.ref is not None
    ref = run.result.diff.ref
    total = run.result.counts["created"]

    app: FastAPI = create_app(local_stack.settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as api,
    ):
        whole = await api.get(f"/api/provision/diffs/{ref}")
        changes = await api.get(f"/api/provision/diffs/{ref}?changes_only=true")
        unknown = await api.get(f"/api/provision/diffs/{'0' * 32}")
    assert whole.status_code == 200, whole.text
    diff = Diff.model_validate(whole.json())
    assert len(diff.changes) == total and diff.left_out == {}
    assert {c.action for c in diff.changes} == {"create"}
    assert sorted(c.name for c in diff.changes if c.kind == "user")[:2] == [
        "user-000000",
        "user-000001",
    ]
    assert (diff.desired_digest, diff.live_digest) == (
        run.result.diff.desired_digest,
        run.result.diff.live_digest,
    )
    assert Diff.model_validate(changes.json()).changes == diff.changes  # nothing unchanged
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith(f"no diff under '{'0' * 32}': unknown")

    out = tmp_path / "diff.json"
    cli = subprocess.run(
        [sys.executable, "-m", "conceptor", "provision", "--diff", ref, "--out", str(out)],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"realm {env.realm}: created {total}" in cli.stderr
    assert Diff.model_validate_json(out.read_text()) == diff
