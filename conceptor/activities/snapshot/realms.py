"""Keycloak's part of a snapshot: each declared realm, its users' stored credentials included.

The admin REST API never returns a stored credential, so a realm saved through it could not
give a user back their password. Conceptor's Keycloak extension (`_dev-env/keycloak-extension`,
built by the set-up) exports a realm the way `kc.sh export` writes it, and restores it with
Keycloak's own import inside one transaction: a failed restore leaves the realm as it was.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx

from conceptor.activities.declared import load_declared
from conceptor.activities.snapshot.store import realm_file, refuse
from conceptor.platform.http import client as http_client
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.settings import Settings
from conceptor.snapshot_contracts import SNAPSHOT_CORRUPT, SNAPSHOT_REFUSED, RealmPart

EXTENSION_API = 1
# A realm of 50 000 users is one export and one import of tens of megabytes.
_TIMEOUT = httpx.Timeout(600, connect=5)


def declared_realms(settings: Settings) -> list[str]:
    """The environment file's realms by their Keycloak names: the first is the settings'
    (CENTRAL_REALM_NAME), as `import_realm` has it."""
    env, _file = load_declared(SNAPSHOT_REFUSED)
    names = [r.name for r in env.realms]
    return [settings.realm_name, *names[1:]] if names else []


def _base(settings: Settings) -> str:
    return f"{settings.keycloak_url}/realms/master/conceptor"


async def _headers(settings: Settings, http: httpx.AsyncClient) -> dict[str, str]:
    token = await admin_token(settings, http)
    info = await http.get(f"{_base(settings)}/info", headers={"Authorization": f"Bearer {token}"})
    if info.status_code == 404 or (
        info.status_code == 200 and info.json().get("apiVersion") != EXTENSION_API
    ):
        raise refuse(
            f"Keycloak at {settings.keycloak_url} lacks Conceptor's extension (api "
            f"{EXTENSION_API}; answered {info.status_code}): run `make setup`, which builds it "
            "into Keycloak's providers/, then restart Keycloak (`tilt trigger keycloak`)"
        )
    info.raise_for_status()
    return {"Authorization": f"Bearer {token}"}


async def save(settings: Settings, name: str, realm: str) -> RealmPart:
    """Export `realm` into the snapshot's folder (owner-only: it holds password hashes)."""
    async with http_client(timeout=_TIMEOUT) as http:
        headers = await _headers(settings, http)
        resp = await http.get(f"{_base(settings)}/realms/{realm}/snapshot", headers=headers)
        if resp.status_code == 404:
            raise refuse(
                f"realm {realm} does not exist in Keycloak at {settings.keycloak_url}: "
                "provision the environment before saving a snapshot"
            )
        resp.raise_for_status()
    body = resp.content
    users = len(resp.json().get("users") or [])
    path = realm_file(settings, name, realm)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, body)
    return RealmPart(realm=realm, users=users, bytes=len(body), sha256=_sha256(body))


async def restore(settings: Settings, name: str, part: RealmPart) -> str:
    """Replace the live realm by the saved one, in one Keycloak transaction."""
    path = realm_file(settings, name, part.realm)
    body = _read_checked(path, part)
    async with http_client(timeout=_TIMEOUT) as http:
        headers = await _headers(settings, http)
        resp = await http.put(
            f"{_base(settings)}/realms/{part.realm}/snapshot",
            headers={**headers, "Content-Type": "application/json"},
            content=body,
        )
        if resp.status_code >= 400:
            raise RuntimeError(
                f"Keycloak refused to restore realm {part.realm} ({resp.status_code}: "
                f"{resp.text[:300]}); the realm is as it was"
            )
        restored: dict[str, Any] = resp.json()
    if restored.get("users") != part.users:
        raise RuntimeError(
            f"realm {part.realm} holds {restored.get('users')} users after the restore, the "
            f"snapshot {part.users}"
        )
    return f"realm {part.realm}: {part.users} users with their credentials"


def check_saved(settings: Settings, name: str, part: RealmPart) -> None:
    """Refuse a snapshot whose realm file is missing or not the one saved."""
    _read_checked(realm_file(settings, name, part.realm), part)


def _read_checked(path: Path, part: RealmPart) -> bytes:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise refuse(f"{path}: {exc.strerror}", SNAPSHOT_CORRUPT) from None
    if _sha256(body) != part.sha256:
        raise refuse(f"{path}: its checksum is not the manifest's", SNAPSHOT_CORRUPT)
    return body


def _write_private(path: Path, body: bytes) -> None:
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(body)
    os.replace(partial, path)


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
