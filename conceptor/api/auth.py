"""Bearer tokens of the realms the API trusts, each checked against its realm's JWKS."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from conceptor.platform import environment
from conceptor.platform.settings import Settings

ALGORITHMS = ["RS256"]


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired, forged or meant for someone else (401)."""


class JWKSUnavailableError(Exception):
    """The identity provider's key set cannot be fetched (503, not the caller's fault)."""


@dataclass(frozen=True)
class User:
    """The verified caller: subject, user name and realm roles."""

    subject: str
    username: str
    roles: frozenset[str]


def accepted_issuers(settings: Settings, realm: str | None = None) -> list[str]:
    """A realm's issuer (default the settings' realm) as the API reaches Keycloak, and as
    browsers and scripts do.

    Keycloak in development writes into `iss` the host a token was requested on: people
    type `localhost` or 127.0.0.1 on this prefix's Keycloak port (in the cluster, through a
    port-forward) while the API may use an in-cluster name. All name the same realm, whose
    keys still have to sign the token. Anything else: CENTRAL_API_EXTRA_ISSUERS (spellings
    of the settings' realm).
    """
    name = realm or settings.realm_name
    path = f"/realms/{name}"
    candidates = [
        f"{settings.keycloak_url}{path}",
        f"http://127.0.0.1:{settings.port('keycloak')}{path}",
        f"http://localhost:{settings.port('keycloak')}{path}",
        *(settings.api_extra_issuers if name == settings.realm_name else ()),
    ]
    return list(dict.fromkeys(candidates))


def trusted_realms(settings: Settings) -> list[str]:
    """The realms whose tokens the API accepts, as the environment file says (`api:` on a
    realm; by default the first only, which is the one settings name). Without a readable
    file, or with no realm declared: the settings' realm."""
    try:
        env = environment.load(environment.default_file())
    except environment.EnvironmentFileError:
        return [settings.realm_name]
    if not env.realms:
        return [settings.realm_name]
    first = env.realms[0].name
    trusted = env.api_realms()
    return list(dict.fromkeys(settings.realm_name if r == first else r for r in trusted))


class _RealmKeys:
    """One trusted realm: its issuer spellings and its key set (cached, refetched on an
    unknown kid, at most once per interval)."""

    def __init__(self, settings: Settings, realm: str, http: httpx.AsyncClient) -> None:
        self.realm = realm
        self.issuers = accepted_issuers(settings, realm)
        self._http = http
        self._jwks_url = f"{settings.keycloak_url}/realms/{realm}/protocol/openid-connect/certs"
        self._min_refresh = settings.api_jwks_min_refresh_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        try:
            resp = await self._http.get(self._jwks_url, timeout=5)
            resp.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(resp.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            msg = f"cannot fetch the signing keys from {self._jwks_url}: {exc}"
            raise JWKSUnavailableError(msg) from exc
        self._keys = {key.key_id: key for key in jwks.keys if key.key_id}
        self._fetched_at = time.monotonic()

    async def key_for(self, kid: str) -> Any:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # Refetch for an unknown kid (key rotation), but not for every forged token.
            recent = (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at < self._min_refresh
            )
            if kid not in self._keys and not recent:
                await self._refresh()
        if kid not in self._keys:
            msg = f"token signed with unknown key id {kid!r}"
            raise InvalidTokenError(msg)
        return self._keys[kid]


class TokenVerifier:
    """Verifies RS256 access tokens: issued by a trusted realm, signed by one of its keys,
    for the API's audience, not expired."""

    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, realms: list[str] | None = None
    ) -> None:
        names = realms if realms is not None else trusted_realms(settings)
        self._realms = [_RealmKeys(settings, name, http) for name in names]
        self._audience = settings.api_client_id

    @property
    def realms(self) -> list[str]:
        return [r.realm for r in self._realms]

    def _realm_of(self, token: str) -> _RealmKeys:
        """The trusted realm whose issuer the token names (its signature is checked after)."""
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            msg = f"malformed token: {exc}"
            raise InvalidTokenError(msg) from exc
        for realm in self._realms:
            if issuer in realm.issuers:
                return realm
        trusted = ", ".join(self.realms) or "none"
        msg = f"token issuer {issuer!r} is not a realm the API trusts (trusted realms: {trusted})"
        raise InvalidTokenError(msg)

    async def verify(self, token: str) -> User:
        """The user the token names; raises InvalidTokenError with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            msg = f"malformed token: {exc}"
            raise InvalidTokenError(msg) from exc
        kid = header.get("kid")
        if header.get("alg") not in ALGORITHMS or not isinstance(kid, str):
            msg = f"token must be RS256 with a key id, got alg={header.get('alg')!r}"
            raise InvalidTokenError(msg)
        realm = self._realm_of(token)
        key = await realm.key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=realm.issuers,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("token has expired") from exc
        except jwt.PyJWTError as exc:
            msg = f"token rejected: {exc}"
            raise InvalidTokenError(msg) from exc
        realm_access = claims.get("realm_access") or {}
        roles = realm_access.get("roles") if isinstance(realm_access, dict) else None
        subject = str(claims.get("sub") or claims.get("preferred_username") or "")
        return User(
            subject=subject,
            username=str(claims.get("preferred_username") or subject),
            roles=frozenset(r for r in roles or [] if isinstance(r, str)),
        )
