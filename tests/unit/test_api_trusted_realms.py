"""The realms the API trusts come from the environment file (`api:` on a realm, default the
first); a token of any trusted realm verifies against that realm's keys, another is refused
naming its issuer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from conceptor.api.auth import InvalidTokenError, TokenVerifier, trusted_realms
from conceptor.platform.environment import FILE_VARIABLE, Environment
from conceptor.platform.settings import Settings

SETTINGS = Settings(_env_file=None, port_prefix="466")
KEYCLOAK = "http://127.0.0.1:46614"


def _env(realms: list[dict[str, Any]]) -> Environment:
    return Environment.model_validate({"apiVersion": "conceptor/v1", "realms": realms})


def test_the_first_realm_is_trusted_by_default() -> None:
    env = _env([{"name": "technova", "file": "t.json"}, {"name": "partners", "file": "p.json"}])
    assert env.api_realms() == ["technova"]


def test_api_true_adds_a_realm_and_false_drops_the_first() -> None:
    both = _env(
        [
            {"name": "technova", "file": "t.json"},
            {"name": "partners", "file": "p.json", "api": True},
            {"name": "vendors", "file": "v.json", "api": False},
        ]
    )
    assert both.api_realms() == ["technova", "partners"]
    second_only = _env(
        [
            {"name": "technova", "file": "t.json", "api": False},
            {"name": "partners", "file": "p.json", "api": True},
        ]
    )
    assert second_only.api_realms() == ["partners"]
    assert _env([]).api_realms() == []


def test_trusted_realms_read_the_file_the_first_by_the_settings_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's first realm is the one settings name (a test may rename it)."""
    file = tmp_path / "environment.yaml"
    realms = [
        {"name": "technova", "file": "t.json"},
        {"name": "partners", "file": "p.json", "api": True},
    ]
    file.write_text(yaml.safe_dump({"apiVersion": "conceptor/v1", "realms": realms}))
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    assert trusted_realms(SETTINGS) == ["technova", "partners"]
    renamed = SETTINGS.model_copy(update={"realm_name": "technova-x1"})
    assert trusted_realms(renamed) == ["technova-x1", "partners"]
    file.write_text(yaml.safe_dump({"apiVersion": "conceptor/v1"}))
    assert trusted_realms(SETTINGS) == ["technova"]  # no realm declared: settings', as before
    file.write_text("apiVersion: conceptor/v1\nrealms: {}\n")
    assert trusted_realms(SETTINGS) == ["technova"]  # a refused file: settings'


class Realms:
    """JWKS endpoints of several realms over in-memory keys."""

    def __init__(self, *names: str) -> None:
        self.keys = {
            n: rsa.generate_private_key(public_exponent=65537, key_size=2048) for n in names
        }
        self.fetched: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        realm = request.url.path.split("/")[2]
        assert request.url.path == f"/realms/{realm}/protocol/openid-connect/certs"
        self.fetched.append(realm)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[realm].public_key()))
        return httpx.Response(200, json={"keys": [{**jwk, "kid": f"{realm}-k", "alg": "RS256"}]})

    def token(self, realm: str, *, signer: str | None = None, host: str = KEYCLOAK) -> str:
        now = int(time.time())
        body = {
            "iss": f"{host}/realms/{realm}",
            "aud": "conceptor-api",
            "sub": f"{realm}-user",
            "preferred_username": f"{realm}-alice",
            "iat": now,
            "exp": now + 60,
        }
        key = self.keys[signer or realm]
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": f"{signer or realm}-k"})


async def test_tokens_of_each_trusted_realm_verify_against_its_own_keys() -> None:
    realms = Realms("technova", "partners", "vendors")
    http = httpx.AsyncClient(transport=httpx.MockTransport(realms.handler))
    verifier = TokenVerifier(SETTINGS, http, ["technova", "partners"])
    assert verifier.realms == ["technova", "partners"]
    partner = await verifier.verify(realms.token("partners", host="http://localhost:46614"))
    assert partner.username == "partners-alice"
    assert (await verifier.verify(realms.token("technova"))).username == "technova-alice"
    assert realms.fetched == ["partners", "technova"]
    with pytest.raises(InvalidTokenError) as untrusted:
        await verifier.verify(realms.token("vendors"))
    assert str(untrusted.value) == (
        f"token issuer '{KEYCLOAK}/realms/vendors' is not a realm the API trusts "
        "(trusted realms: technova, partners)"
    )
    # A trusted realm's issuer on a token another realm signed: that realm's keys decide.
    with pytest.raises(InvalidTokenError) as crossed:
        await verifier.verify(realms.token("partners", signer="vendors"))
    assert str(crossed.value) == "token signed with unknown key id 'vendors-k'"
    assert realms.fetched == ["partners", "technova"]  # vendors' keys never asked for
