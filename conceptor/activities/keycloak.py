"""Keycloak activities: wait for an admin token, import (plan, create or reconcile) the realm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.declared import load_declared
from conceptor.activities.diffs import keep, packed_result
from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.own_loop import on_own_loop
from conceptor.activities.realm.items import DELETABLE
from conceptor.activities.realm.progress import Progress, track
from conceptor.activities.realm.reconciler import RealmReconciler
from conceptor.activities.realm_file import REALM_FILE_INVALID, load_realm
from conceptor.activities.reconcile import check_plan
from conceptor.activities.waiting import address_of, heartbeating, wait_for
from conceptor.contracts import ReconcileInput, StepResult, WaitInput
from conceptor.platform.collector import collector_paused
from conceptor.platform.diff_store import Packed
from conceptor.platform.http import client as http_client
from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.settings import Settings


def managed_kinds(settings: Settings) -> set[str]:
    """CENTRAL_REALM_MANAGED as a set of words; an unknown word is a configuration error."""
    words = {w.strip() for w in settings.realm_managed.split(",") if w.strip()}
    unknown = sorted(words - set(DELETABLE))
    if unknown:
        msg = (
            f"CENTRAL_REALM_MANAGED names {', '.join(unknown)}, which provisioning cannot "
            f"delete; known: {', '.join(sorted(DELETABLE))}"
        )
        raise ApplicationError(msg, type=REALM_FILE_INVALID, non_retryable=True)
    return words


class KeycloakActivities:
    """Activities bound to one settings object (admin password and client secret stay in it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = AdminTokens(settings)
        # The admin calls that wrote something in the last import (method and path), so a
        # re-run can be shown to write nothing.
        self.last_writes: list[str] = []

    @activity.defn(name="wait_for_keycloak")
    async def wait_for_keycloak(self, wait: WaitInput) -> StepResult:
        """Until the master realm's admin user gets a token (a port answering is not enough)."""

        async def probe() -> str:
            # A shared TLS context: this runs every half second while Keycloak starts.
            async with http_client(timeout=5) as http:
                if self.tokens.cached() is None:
                    await self.tokens.grant(http)
                    return "admin token issued"
                # A token from a previous run still works: the admin API answers with it.
                await KeycloakAdmin(self.settings, http, self.tokens).call("GET", "/realms/master")
            return "admin API answers"

        address = address_of(self.settings.keycloak_url, 80)
        return await wait_for("keycloak", address, probe, wait)

    @activity.defn(name="import_realm")
    async def import_realm(self, data: ReconcileInput | None = None) -> StepResult:
        """Bring the realm to its file (create it when absent); with `plan`, only say what.

        No fixed deadline (a realm of 50 000 users takes minutes): the heartbeats say the
        worker is alive and how far it got (phase, users read, admin writes), shown in the
        Web UI's pending activity; a dead worker is noticed by the heartbeat timeout. The
        work runs on its own loop: seconds of comparing never hold up the heartbeats.
        """
        progress = Progress()
        writes: list[str] = []

        def details() -> dict[str, object]:
            return {**progress.details(), "writes": len(writes)}

        try:
            async with heartbeating(details=details):
                result, packed = await on_own_loop(lambda: self._import(data, progress, writes))
                progress.phase = "keeping the full diff"
                return await keep(self.settings, result, packed)
        finally:
            self.last_writes = list(writes)

    async def _import(
        self, data: ReconcileInput | None, progress: Progress, writes: list[str]
    ) -> tuple[StepResult, Packed]:
        """import_realm's work, reporting into `progress` and recording its admin writes: the
        result, and the full diff packed to keep (from the worker's loop, whose Redis client
        lives as long as the worker)."""
        track(progress)
        plan = bool(data and data.plan)
        name, path = self._realm(data.target if data is not None else None)
        managed = managed_kinds(self.settings)
        # A realm's items all stay alive until the result is packed: collecting cycles while
        # they are built would walk them again and again.
        with collector_paused():
            realm = load_realm(path, self.settings, name)
            async with http_client(timeout=_timeout(realm)) as http:
                admin = KeycloakAdmin(self.settings, http, self.tokens)
                admin.writes = writes  # read by the heartbeats, from the worker's loop
                reconciler = RealmReconciler(admin, realm, managed=managed)
                diff = await reconciler.run(
                    plan=plan, before_writes=lambda diff: check_plan(diff, data)
                )
            progress.phase = "packing the full diff"
            return packed_result(
                diff,
                planned=plan,
                attempts=activity.info().attempt,
                detail=f"realm {realm['realm']} from {path.name}: {len(writes)} admin writes",
                warnings=reconciler.warnings,
            )

    def _realm(self, target: str | None) -> tuple[str | None, Path]:
        """The realm's name and file: settings' (None) or realm `target` of the environment
        file."""
        if target is None:
            if self.settings.realm_file is None:
                msg = "no realm: the environment file declares none and CENTRAL_REALM_FILE is unset"
                raise ApplicationError(msg, type=REALM_FILE_INVALID, non_retryable=True)
            return None, Path(self.settings.realm_file)
        env, file = load_declared(REALM_FILE_INVALID)
        realm = next((r for r in env.realms if r.name == target), None)
        if realm is None:
            msg = f"{file} declares no realm {target!r}"
            raise ApplicationError(msg, type=REALM_FILE_INVALID, non_retryable=True)
        return target, (file.resolve().parent / realm.file).resolve()


def _timeout(realm: dict[str, Any]) -> httpx.Timeout:
    """Per admin call: reads are paged and short, but creating a realm is one POST whose
    time grows with its users (about 2 ms each on a laptop): allow it 10 times that."""
    users = len(realm.get("users") or [])
    return httpx.Timeout(60.0 + 0.02 * users, connect=10.0)
