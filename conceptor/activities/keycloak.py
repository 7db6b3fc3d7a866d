"""Keycloak activities: wait for an admin token, import (create or reconcile) the realm."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio import activity

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.keycloak_realm import RealmReconciler
from conceptor.activities.realm_file import load_realm
from conceptor.activities.waiting import heartbeating, wait_for
from conceptor.platform.settings import Settings
from conceptor.workflows.provision_models import StepResult, WaitInput


class KeycloakActivities:
    """Activities bound to one settings object (admin password and client secret stay in it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="wait_for_keycloak")
    async def wait_for_keycloak(self, wait: WaitInput) -> StepResult:
        """Until the master realm's admin user gets a token (a port answering is not enough)."""

        async def probe() -> str:
            async with httpx.AsyncClient(timeout=5) as http:
                await KeycloakAdmin(self.settings, http).token()
            return "admin token issued"

        address = f"{self.settings.host}:{self.settings.port('keycloak')}"
        return await wait_for("keycloak", address, probe, wait)

    @activity.defn(name="import_realm")
    async def import_realm(self) -> StepResult:
        """Create the realm from its file, or bring an existing one up to the file."""
        path = Path(self.settings.realm_file)
        realm = load_realm(path, self.settings)
        async with heartbeating(), httpx.AsyncClient(timeout=30) as http:
            changes = await RealmReconciler(KeycloakAdmin(self.settings, http), realm).run()
        return StepResult.from_counts(
            created=changes.created,
            updated=changes.updated,
            unchanged=changes.unchanged,
            attempts=activity.info().attempt,
            detail=f"realm {realm['realm']} from {path.name}",
        )
