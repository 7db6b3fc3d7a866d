"""A small Keycloak admin REST client: admin token, JSON calls, precise errors, counted writes."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import orjson
from temporalio.exceptions import ApplicationError

from conceptor.platform.keycloak_tokens import AdminTokens
from conceptor.platform.retrying import retry_until
from conceptor.platform.settings import Settings

REALM_REJECTED = "RealmRejected"
USERS_BULK = 1  # the shape of the extension's users-bulk answer this client reads
# Answers that say "the server or the way to it is not ready": retried, never final.
_TRANSIENT = (401, 408, 425, 429)


class KeycloakError(RuntimeError):
    """A transient or unexpected answer (retryable)."""


class _ConflictError(Exception):
    """Keycloak answered 409 to an update: another writer holds the same object."""


# How long an update waits out a concurrent writer of the same object before giving up.
_CONFLICT_SECONDS = 10.0


class KeycloakAdmin:
    """Calls `/admin/realms/...` with a token of the master realm's admin user.

    Every call that may change something is recorded in `writes` (method and path), so a
    re-run can prove that it wrote nothing.
    """

    def __init__(self, settings: Settings, http: httpx.AsyncClient, tokens: AdminTokens) -> None:
        self.settings = settings
        self.http = http
        self.tokens = tokens
        self.writes: list[str] = []
        self._bulk: bool | None = None  # the extension's users-bulk read: not asked yet

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        ok: tuple[int, ...] = (200, 201, 204),
        where: str = "",
        read_only: bool = False,
    ) -> httpx.Response:
        """One admin call; 400-class answers other than `ok` are non-retryable, naming `where`."""
        url = f"{self.settings.keycloak_url}/admin{path}"
        if method != "GET" and not read_only:
            self.writes.append(f"{method} {path}")
        resp = await self._send(method, url, json)
        if resp.status_code == 409 and method in ("PUT", "DELETE") and 409 not in ok:
            # Another run is changing the same object right now: its transaction ends soon,
            # and the same request then goes through.
            with contextlib.suppress(_ConflictError):
                async for attempt in retry_until(
                    _CONFLICT_SECONDS, every=0.2, growing_to=1.0, on=_ConflictError
                ):
                    with attempt:
                        resp = await self._send(method, url, json)
                        if resp.status_code == 409:
                            raise _ConflictError
        if method == "POST" and _adds_to_a_relation(path) and _already_there(resp):
            # Adding to a relation (composites, role mappings) that a concurrent run has just
            # added too: the addition is there. The step's verify reads the realm back.
            return resp
        if resp.status_code in ok:
            return resp
        detail = resp.text[:500]
        msg = f"Keycloak answered {method} {path} with HTTP {resp.status_code}: {detail}"
        if where:
            msg = f"{where}: {msg}"
        if resp.status_code == 409 and method in ("PUT", "DELETE"):
            # Another run changed the same object at the same moment: the retry reads the live
            # state again, and finds the change made or still to make.
            raise KeycloakError(f"{msg} (a concurrent change: retried)")
        if 400 <= resp.status_code < 500 and resp.status_code not in _TRANSIENT:
            raise ApplicationError(msg, type=REALM_REJECTED, non_retryable=True)
        raise KeycloakError(msg)

    async def _send(self, method: str, url: str, json: Any) -> httpx.Response:
        token = await self.tokens.get(self.http)
        resp = await self.http.request(method, url, json=json, headers=_bearer(token))
        if resp.status_code == 401:  # expired or revoked (Keycloak restarted): grant once more
            token = await self.tokens.grant(self.http)
            resp = await self.http.request(method, url, json=json, headers=_bearer(token))
        return resp

    async def extension(self, path: str) -> Any:
        """A read of Conceptor's own Keycloak extension (`/realms/master/conceptor/...`)."""
        url = f"{self.settings.keycloak_url}/realms/master/conceptor{path}"
        resp = await self._send("GET", url, None)
        if resp.status_code == 200:
            return orjson.loads(resp.content)  # pages of a thousand users: parsed at C speed
        msg = f"Keycloak answered GET {url} with HTTP {resp.status_code}: {resp.text[:500]}"
        raise KeycloakError(msg)

    async def bulk_reads(self) -> bool:
        """Whether the extension serves the users-bulk read (a Keycloak without it, or with an
        older build of it, is read through the admin API alone)."""
        if self._bulk is None:
            url = f"{self.settings.keycloak_url}/realms/master/conceptor/info"
            resp = await self._send("GET", url, None)
            self._bulk = resp.status_code == 200 and resp.json().get("usersBulk") == USERS_BULK
        return self._bulk

    async def read(self, method: str, path: str) -> httpx.Response:
        """A call that changes nothing although it is not a GET (e.g. the partial export)."""
        return await self.call(method, path, read_only=True)

    async def get_json(self, path: str) -> Any:
        return orjson.loads((await self.call("GET", path)).content)

    async def find(self, path: str) -> Any | None:
        """GET that maps 404 to None."""
        resp = await self.call("GET", path, ok=(200, 404))
        return None if resp.status_code == 404 else resp.json()

    async def create(self, path: str, body: Any, *, where: str = "") -> str | None:
        """POST; the new object's id (from Location), "" if none, None on 409 (exists already)."""
        resp = await self.call("POST", path, json=body, ok=(200, 201, 204, 409), where=where)
        if resp.status_code == 409:
            return None
        location: str = resp.headers.get("Location", "")
        return location.rstrip("/").rsplit("/", 1)[-1]


def _adds_to_a_relation(path: str) -> bool:
    """A POST that adds members to a set (composite roles, role mappings), not an object."""
    return path.endswith("/composites") or "/role-mappings/" in path


def _already_there(resp: httpx.Response) -> bool:
    """Keycloak's answers to adding a member that is already in the set: 409 for composites,
    a 400 "Could not add ... role mappings" for role mappings."""
    if resp.status_code == 409:
        return True
    return resp.status_code == 400 and "could not add" in resp.text.lower()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
