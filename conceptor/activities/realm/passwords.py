"""A new realm's plain passwords hashed here, stored as Keycloak 26 itself stores them.

Keycloak hashes each plain password of a realm file with argon2id when it creates the realm: in
a Keycloak that has just started, whose Java code is not compiled yet, that takes about two
seconds a password, and it sits on the path of every `tilt up` on fresh data. The same hash in C
(argon2-cffi) takes milliseconds. The credential is sent as a realm export holds it (`secretData`,
`credentialData`), with exactly the parameters Keycloak 26 uses by default, so Keycloak stores
what it would have computed, and a login checks it as usual.

Only where that is certain: the realm's password policy chooses no hash algorithm or iteration
count, the Keycloak is the pinned one (it serves Conceptor's extension), and the credential is a
plain password not marked temporary (whatever Keycloak makes of that flag stays its own doing).
Everything else goes to Keycloak as the file has it.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from argon2.low_level import Type, hash_secret_raw

# Keycloak 26's argon2 defaults (Argon2PasswordHashProviderFactory), as it records them.
_ITERATIONS = 5
_MEMORY_KIB = 7168
_PARALLELISM = 1
_HASH_LENGTH = 32
_SALT_BYTES = 16
_CREDENTIAL_DATA = json.dumps(
    {
        "hashIterations": _ITERATIONS,
        "algorithm": "argon2",
        "additionalParameters": {
            "hashLength": [str(_HASH_LENGTH)],
            "memory": [str(_MEMORY_KIB)],
            "type": ["id"],
            "version": ["1.3"],
            "parallelism": [str(_PARALLELISM)],
        },
    },
    separators=(",", ":"),
)
_PLAIN_KEYS = frozenset({"type", "value", "temporary", "userLabel"})
_POLICY_HASHING = ("hashAlgorithm", "hashIterations")
_HASHERS = 2  # argon2-cffi releases the GIL: one hash a core


def _plain(credential: Any) -> bool:
    return (
        isinstance(credential, dict)
        and credential.get("type") == "password"
        and isinstance(credential.get("value"), str)
        and not credential.get("temporary")
        and set(credential) <= _PLAIN_KEYS
    )


def _stored(credential: dict[str, Any]) -> dict[str, Any]:
    """The credential as Keycloak's export gives it: salt and hash, and how they were made."""
    salt = os.urandom(_SALT_BYTES)
    digest = hash_secret_raw(
        credential["value"].encode(),
        salt,
        time_cost=_ITERATIONS,
        memory_cost=_MEMORY_KIB,
        parallelism=_PARALLELISM,
        hash_len=_HASH_LENGTH,
        type=Type.ID,
        version=19,  # argon2 1.3
    )
    secret = {
        "value": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "additionalParameters": {},
    }
    stored = {
        "type": "password",
        "createdDate": int(time.time() * 1000),
        "secretData": json.dumps(secret, separators=(",", ":")),
        "credentialData": _CREDENTIAL_DATA,
    }
    if "userLabel" in credential:
        stored["userLabel"] = credential["userLabel"]
    return stored


def hashed_here(rep: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`rep` with its users' plain passwords hashed (a copy when any is), and how many were.

    Call only for a realm about to be created in the pinned Keycloak (see the module's doc).
    """
    policy = str(rep.get("passwordPolicy") or "")
    if any(word in policy for word in _POLICY_HASHING):
        return rep, 0  # the realm chooses its own hashing: Keycloak applies it
    places = [
        (u, i)
        for u, user in enumerate(rep.get("users") or [])
        if isinstance(user, dict)
        for i, credential in enumerate(user.get("credentials") or [])
        if _plain(credential)
    ]
    if not places:
        return rep, 0
    out = dict(rep)
    out["users"] = copy.copy(rep["users"])
    plain = [rep["users"][u]["credentials"][i] for u, i in places]
    with ThreadPoolExecutor(_HASHERS) as pool:
        stored = list(pool.map(_stored, plain))
    for (u, i), credential in zip(places, stored, strict=True):
        user = dict(out["users"][u])
        user["credentials"] = list(user["credentials"])
        user["credentials"][i] = credential
        out["users"][u] = user
    return out, len(places)
