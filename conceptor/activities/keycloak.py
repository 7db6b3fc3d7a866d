"""Keycloak activities: wait for an admin token, import (create or reconcile) the realm."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio import activity

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.keycloak_realm import RealmReconciler
from conceptor.activities.realm_file import load_realm
from conceptor.activities.waiting import address_of, heartbeating, wait_for
from conceptor.contracts import StepResult, WaitInput
from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import Settings


class KeycloakActivities:
    """Activities bound to one settings object (admin password and client secret stay in it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = AdminTokens(settings)

    @activity.defn(name="wait_for_keycloak")
    async def wait_for_keycloak(self, wait: WaitInput) -> StepResult:
        """Until the master realm's admin user gets a token (a port answering is not enough)."""

        async def probe() -> str:
            async with httpx.AsyncClient(timeout=5) as http:
                if self.tokens.cached() is None:
                    await self.tokens.grant(http)
                    return "admin token issued"
                # A token from a previous run still works: the admin API answers with it.
                await KeycloakAdmin(self.settings, http, self.tokens).call("GET", "/realms/master")
            return "admin API answers"

        address = address_of(self.settings.keycloak_url, 80)
        return await wait_for("keycloak", address, probe, wait)

    @activity.defn(name="import_realm")
    async def import_realm(self) -> StepResult:
        """Create the realm from its file, or bring an existing one up to the file."""
        path = Path(self.settings.realm_file)
        realm = load_realm(path, self.settings)
        async with heartbeating(), httpx.AsyncClient(timeout=30) as http:
            admin = KeycloakAdmin(self.settings, http, self.tokens)
            changes = await RealmReconciler(admin, realm).run()
        return StepResult.from_counts(
            created=sorted(changes.created),
            updated=sorted(changes.updated),
            unchanged=sorted(changes.unchanged),
            attempts=activity.info().attempt,
            detail=f"realm {realm['realm']} from {path.name}",
        )
