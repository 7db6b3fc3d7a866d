"""One realm import: desired → live → diff → (plan | apply → read again → verify)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.keycloak_admin import KeycloakAdmin
from conceptor.activities.realm import ownership
from conceptor.activities.realm.apply import Applier
from conceptor.activities.realm.create import conflict_culprit, create_realm
from conceptor.activities.realm.desired import refusals
from conceptor.activities.realm.diff import RealmDiff, compare
from conceptor.activities.realm.normalise import items_of
from conceptor.activities.realm.passwords import hashed_here
from conceptor.activities.realm.refs import dangling
from conceptor.activities.realm.snapshot import q, read_live, user_scope
from conceptor.activities.realm.strip import strip
from conceptor.activities.reconcile import UNMANAGED, verify
from conceptor.contracts import Diff
from conceptor.realmfile.compat import adapt
from conceptor.realmfile.notes import Notebook
from conceptor.realmfile.scopes import BUILT_IN_SCOPES, add_definitions, to_copy

_VISIBLE_POLLS = 120


def _nothing(_: Diff) -> None:
    """No check before writing."""


_VISIBLE_INTERVAL = 0.25


class RealmReconciler:
    """Brings one realm to its representation, or (plan) says what that would write."""

    def __init__(self, admin: KeycloakAdmin, rep: dict[str, Any], *, managed: set[str]) -> None:
        self.admin = admin
        # The file as Keycloak 26 keeps it: what it drops or renames is a warning, not a diff.
        self.rep, self.warnings = adapt(rep)
        self.name = str(rep["realm"])
        self.target = f"realm {self.name}"
        self.deletable = ownership.deletable_kinds(managed)
        self.desired = items_of(self.rep)
        self.secrets_of = {c["clientId"] for c in self.rep.get("clients", []) if c.get("secret")}

    async def _builtin_scopes(self) -> None:
        """Built-in scopes the file refers to without defining them, as Keycloak defines them."""
        if not to_copy(self.rep):
            return
        notes = Notebook()
        self.rep = add_definitions(self.rep, await _master_scopes(self.admin), notes)
        self.warnings.extend(notes.messages())
        self.desired = items_of(self.rep)

    async def _read(self, *, verifying: bool = False) -> tuple[dict[str, Any] | None, RealmDiff]:
        scope = user_scope(self.desired)  # only what the comparison of users needs: faster
        live_rep = await read_live(self.admin, self.name, secrets_of=self.secrets_of, scope=scope)
        live = items_of(live_rep) if live_rep is not None else None
        owned = ownership.owned_of(live_rep)
        result = compare(
            self.target,
            self.desired,
            live,
            deletable=self.deletable,
            owned=owned,
            live_digest=not verifying,  # a verifying read's digest is never looked at
        )
        result.refusals[:0] = refusals(self.rep, realm_exists=live_rep is not None)
        if live is not None:
            result.refusals.extend(dangling(self.desired, live))
        return live_rep, result

    def _refuse(self, result: RealmDiff) -> None:
        """Every refusal at once (the first ten in full), so one edit of the file fixes all."""
        if not result.refusals:
            return
        shown = [r.message for r in result.refusals[:10]]
        left = len(result.refusals) - len(shown)
        msg = "; ".join(shown) + (f"; and {left} more refused" if left else "")
        raise ApplicationError(msg, type=UNMANAGED, non_retryable=True)

    async def run(self, *, plan: bool, before_writes: Callable[[Diff], None] = _nothing) -> Diff:
        """The diff applied (or, for a plan, to apply); `before_writes` may refuse it first."""
        await self._builtin_scopes()
        live_rep, result = await self._read()
        self._refuse(result)
        if plan:
            return result.diff
        before_writes(result.diff)
        if live_rep is None:
            owned = ownership.after({}, list(self.desired.values()), [])
            attributes = {**(self.rep.get("attributes") or {}), **ownership.attributes_for(owned)}
            body = {**self.rep, "attributes": attributes}
            if await self.admin.bulk_reads():  # the pinned Keycloak: its hashing is known
                body, _ = await asyncio.to_thread(hashed_here, body)
            if await create_realm(self.admin, body):
                await self._check()
                return result.diff
            await self._visible()  # a concurrent run created it: reconcile against that
            live_rep, result = await self._read()
            self._refuse(result)
        if not result.diff.is_empty:
            assert live_rep is not None
            live = items_of(live_rep)
            await Applier(self.admin, self.name, self.desired, live).run(result.diff)
            await self._record_ownership(live_rep, result.diff)
            await self._check()
        return result.diff

    async def _check(self) -> None:
        """Read the live state again: nothing may be left to do."""
        _, after = await self._read(verifying=True)
        verify(after.diff)

    async def _record_ownership(self, live_rep: dict[str, Any], diff: Diff) -> None:
        created = [self.desired[(c.kind, c.name)] for c in diff.changes if c.action == "create"]
        deleted = [(c.kind, c.name) for c in diff.changes if c.action == "delete"]
        before = ownership.owned_of(live_rep)
        now = ownership.after(before, created, deleted)
        if now == before:
            return
        attributes = {**(live_rep.get("attributes") or {}), **ownership.attributes_for(now)}
        base = f"/realms/{q(self.name)}"
        await self.admin.call(
            "PUT", base, json={"realm": self.name, "attributes": attributes}, where="attributes"
        )

    async def _visible(self) -> None:
        """A realm another run is creating: Keycloak takes seconds to commit it."""
        for _ in range(_VISIBLE_POLLS):
            if await self.admin.find(f"/realms/{q(self.name)}") is not None:
                return
            activity.heartbeat()
            await asyncio.sleep(_VISIBLE_INTERVAL)
        # No realm came: the conflict is inside the file (a duplicate element, or ids of
        # another realm of this Keycloak). Narrowed down like a 400 or 500; when every part
        # goes in alone, that raises a retryable error (a run creating a large realm can take
        # longer than the wait).
        raise await conflict_culprit(self.admin, self.rep)


async def _master_scopes(admin: KeycloakAdmin) -> dict[str, dict[str, Any]]:
    """The built-in client scopes as this Keycloak defines them (in its master realm)."""
    scopes = await admin.get_json("/realms/master/client-scopes")
    return {s["name"]: strip(s) for s in scopes if s.get("name") in BUILT_IN_SCOPES}
