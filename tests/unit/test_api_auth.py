"""Token verification against a JWKS: keys cached, refetched on an unknown kid, claims checked."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conceptor.api.auth import InvalidTokenError, TokenVerifier, accepted_issuers
from conceptor.platform.settings import Settings

SETTINGS = Settings(_env_file=None, port_prefix="455")


class Realm:
    """A JWKS endpoint over in-memory keys (the unit under test fetches it over HTTP)."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/realms/technova/protocol/openid-connect/certs"
        self.fetches += 1
        jwks = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwks.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return httpx.Response(200, json={"keys": jwks})

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": SETTINGS.keycloak_issuer,
            "aud": "conceptor-api",
            "sub": "u-1",
            "preferred_username": "alice",
            "iat": now,
            "exp": now + 60,
            "realm_access": {"roles": ["platform-admin", "user"]},
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def realm() -> Realm:
    realm = Realm()
    realm.add_key("k1")
    return realm


def verifier(realm: Realm, *, min_refresh: float = 10.0) -> TokenVerifier:
    settings = SETTINGS.model_copy(update={"api_jwks_min_refresh_seconds": min_refresh})
    http = httpx.AsyncClient(transport=httpx.MockTransport(realm.handler))
    return TokenVerifier(settings, http)


async def test_valid_token_gives_user_and_roles(realm: Realm) -> None:
    """Signature, issuer, audience and expiry hold: the user and realm roles come back."""
    user = await verifier(realm).verify(realm.token("k1"))
    assert (user.subject, user.username) == ("u-1", "alice")
    assert user.roles == frozenset({"platform-admin", "user"})


async def test_keys_are_cached_between_tokens(realm: Realm) -> None:
    """Many tokens under a known kid cost one JWKS fetch."""
    v = verifier(realm)
    for _ in range(5):
        await v.verify(realm.token("k1"))
    assert realm.fetches == 1


async def test_unknown_kid_refetches_once_after_rotation(realm: Realm) -> None:
    """A new key id (rotation) triggers a refetch, which finds the new key."""
    v = verifier(realm, min_refresh=0.0)
    await v.verify(realm.token("k1"))
    realm.add_key("k2")
    user = await v.verify(realm.token("k2"))
    assert user.username == "alice"
    assert realm.fetches == 2


async def test_unknown_kid_refetch_is_rate_limited(realm: Realm) -> None:
    """Forged kids cannot make the API hammer Keycloak: one refetch per interval."""
    v = verifier(realm, min_refresh=60.0)
    await v.verify(realm.token("k1"))
    forger = Realm()
    forger.add_key("nope")
    for _ in range(3):
        with pytest.raises(InvalidTokenError) as err:
            await v.verify(forger.token("nope"))
        assert str(err.value) == "token signed with unknown key id 'nope'"
    assert realm.fetches == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 5}, "token has expired"),
        ({"aud": "account"}, "token rejected: Audience doesn't match"),
        (
            {"iss": "http://evil.example/realms/technova"},
            "token issuer 'http://evil.example/realms/technova' is not a realm the API trusts "
            "(trusted realms: technova)",
        ),
    ],
)
async def test_bad_claims_are_rejected(realm: Realm, claims: dict[str, Any], reason: str) -> None:
    """Expired, other audience, other issuer: each refused with its reason."""
    with pytest.raises(InvalidTokenError) as err:
        await verifier(realm).verify(realm.token("k1", **claims))
    assert str(err.value) == reason


async def test_hs256_token_is_refused(realm: Realm) -> None:
    """Algorithm confusion: a symmetric token is refused before any key lookup."""
    token = jwt.encode({"sub": "x"}, "secret-secret-secret-secret-secret", algorithm="HS256")
    with pytest.raises(InvalidTokenError) as err:
        await verifier(realm).verify(token)
    assert str(err.value) == "token must be RS256 with a key id, got alg='HS256'"


def test_accepted_issuers_include_the_localhost_spelling() -> None:
    """Keycloak writes the host it was asked on; both loopback spellings name the realm."""
    assert accepted_issuers(SETTINGS) == [
        "http://127.0.0.1:45514/realms/technova",
        "http://localhost:45514/realms/technova",
    ]


def test_accepted_issuers_in_the_cluster_keep_the_forwarded_spellings() -> None:
    """With an in-cluster Keycloak URL, tokens fetched through the port-forward still verify."""
    settings = Settings(
        _env_file=None,
        port_prefix="440",
        keycloak_url_override="http://localdev-keycloak:8080",
        api_extra_issuers=("https://sso.example/realms/technova",),
    )
    assert accepted_issuers(settings) == [
        "http://localdev-keycloak:8080/realms/technova",
        "http://127.0.0.1:44014/realms/technova",
        "http://localhost:44014/realms/technova",
        "https://sso.example/realms/technova",
    ]
