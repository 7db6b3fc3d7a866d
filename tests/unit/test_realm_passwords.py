"""Which of a new realm's passwords the platform hashes, and that the hash is Keycloak's."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from conceptor.activities.realm.passwords import hashed_here


def realm(*credentials: dict[str, Any], policy: str | None = None) -> dict[str, Any]:
    rep: dict[str, Any] = {
        "realm": "r",
        "users": [{"username": f"u{i}", "credentials": [c]} for i, c in enumerate(credentials)],
    }
    if policy is not None:
        rep["passwordPolicy"] = policy
    return rep


def test_a_plain_password_becomes_keycloaks_argon2id_and_the_file_is_untouched() -> None:
    rep = realm({"type": "password", "value": "pässword", "userLabel": "dev"})
    before = copy.deepcopy(rep)
    out, count = hashed_here(rep)
    assert count == 1
    assert rep == before
    (credential,) = out["users"][0]["credentials"]
    assert set(credential) == {"type", "createdDate", "secretData", "credentialData", "userLabel"}
    data = json.loads(credential["credentialData"])
    assert data["algorithm"] == "argon2" and data["hashIterations"] == 5
    params = data["additionalParameters"]
    secret = json.loads(credential["secretData"])
    salt = base64.b64decode(secret["salt"])
    expected = hash_secret_raw(
        "pässword".encode(),
        salt,
        time_cost=5,
        memory_cost=int(params["memory"][0]),
        parallelism=int(params["parallelism"][0]),
        hash_len=int(params["hashLength"][0]),
        type=Type.ID,
        version=19,
    )
    assert base64.b64decode(secret["value"]) == expected
    assert len(salt) == 16


def test_what_keycloak_must_hash_itself_is_left_as_written() -> None:
    temporary = {"type": "password", "value": "x", "temporary": True}
    hashed = {"type": "password", "secretData": "{}", "credentialData": "{}"}
    otp = {"type": "otp", "value": "123456"}
    rep = realm(temporary, hashed, otp)
    assert hashed_here(rep) == (rep, 0)
    chosen = realm({"type": "password", "value": "x"}, policy="length(8) and hashIterations(9)")
    assert hashed_here(chosen) == (chosen, 0)


def test_only_the_plain_ones_of_many_are_hashed() -> None:
    plain = {"type": "password", "value": "a", "temporary": False}
    temporary = {"type": "password", "value": "b", "temporary": True}
    out, count = hashed_here(realm(plain, temporary, plain))
    assert count == 2
    kinds = ["secretData" in u["credentials"][0] for u in out["users"]]
    assert kinds == [True, False, True]
    first, _, last = out["users"]
    salts = {json.loads(u["credentials"][0]["secretData"])["salt"] for u in (first, last)}
    assert len(salts) == 2  # a salt per credential
