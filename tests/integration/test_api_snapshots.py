"""Snapshots through the API, on the real stack behind the front-door: a platform-admin saves,
lists (public, as the panel does), restores and deletes; a bad name is a 422, a taken name and
an unknown snapshot are 409 and 404, a user without the role gets 403 — never a 500."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api_helpers import ApiStack

pytest_plugins = ["tests.api_stack"]
pytestmark = pytest.mark.integration


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_save_list_restore_delete_through_the_front_door(
    api_stack: ApiStack, admin_token: str, user_token: str, provisioned: Any
) -> None:
    api = f"{api_stack.front_door}/api/snapshots"
    name = f"api-{uuid.uuid4().hex[:8]}"
    with httpx.Client(timeout=120) as http:
        refused = http.post(api, json={"name": name}, headers=_auth(user_token))
        assert refused.status_code == 403, refused.text

        bad = http.post(api, json={"name": "Not A Name"}, headers=_auth(admin_token))
        assert bad.status_code == 422, bad.text
        assert "snapshot name 'Not A Name' is not valid" in bad.json()["detail"][0]["msg"]

        saved = http.post(api, json={"name": name}, headers=_auth(admin_token))
        assert saved.status_code == 201, saved.text
        manifest = saved.json()
        assert manifest["name"] == name
        assert [d["live"] for d in manifest["databases"]] == [api_stack.settings.postgres_db]
        assert [r["realm"] for r in manifest["realms"]] == [api_stack.settings.realm_name]

        again = http.post(api, json={"name": name}, headers=_auth(admin_token))
        assert again.status_code == 409, again.text
        assert f"snapshot {name!r} exists" in again.json()["detail"]

        listed = http.get(api)  # no token: the panel lists them
        assert listed.status_code == 200, listed.text
        assert name in [s["name"] for s in listed.json()["snapshots"]]

        restored = http.post(f"{api}/{name}/restore", headers=_auth(admin_token))
        assert restored.status_code == 200, restored.text
        parts = [p["part"] for p in restored.json()["restored"]]
        assert f"keycloak:{api_stack.settings.realm_name}" in parts

        unknown = http.post(f"{api}/no-such-{name}/restore", headers=_auth(admin_token))
        assert unknown.status_code == 404, unknown.text
        assert f"no snapshot 'no-such-{name}'" in unknown.json()["detail"]

        deleted = http.delete(f"{api}/{name}", headers=_auth(admin_token))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["bytes_freed"] > 0
        assert name not in [s["name"] for s in http.get(api).json()["snapshots"]]
        gone = http.delete(f"{api}/{name}", headers=_auth(admin_token))
        assert gone.status_code == 404, gone.text
