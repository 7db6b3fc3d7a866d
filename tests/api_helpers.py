"""Helpers for API tests and benchmarks: child processes, dev users, real and forged tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from conceptor.platform.dev_tokens import password_grant_token
from conceptor.platform.settings import Settings

LOG_DIR = Path(__file__).parent / "artifacts" / "api"


class Processes:
    """`python -m conceptor ...` children, logs in tests/artifacts/api, stopped by SIGTERM."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "conceptor", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self._logs:
            log.close()


def answers(url: str, *, host: str | None = None) -> bool:
    try:
        headers = {"host": host} if host else {}
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class ApiStack:
    """Where the API answers: through the front-door (what users call) and directly."""

    settings: Settings
    front_door: str
    direct: str


@dataclass(frozen=True)
class DevUser:
    username: str
    password: str
    roles: frozenset[str]


def realm_users(settings: Settings) -> list[DevUser]:
    """The dev users of the realm file, with their plain-text dev passwords."""
    realm = json.loads(settings.realm_file.read_text())
    users = []
    for entry in realm.get("users", []):
        passwords = [
            c["value"] for c in entry.get("credentials", []) if c.get("type") == "password"
        ]
        if passwords:
            roles = frozenset(entry.get("realmRoles", []))
            users.append(DevUser(entry["username"], passwords[0], roles))
    return users


def dev_user(settings: Settings, *, admin: bool) -> DevUser:
    """A dev user holding `platform-admin` (admin=True) or one that does not."""
    for user in realm_users(settings):
        if ("platform-admin" in user.roles) == admin:
            return user
    msg = f"no dev user {'with' if admin else 'without'} platform-admin in {settings.realm_file}"
    raise AssertionError(msg)


def password_token(settings: Settings, user: DevUser) -> str:
    """An access token for `user` from the realm's token endpoint (password grant)."""
    return password_grant_token(settings, user.username, user.password)


def forge_token(claims: dict[str, Any], *, kid: str | None = None) -> str:
    """A token signed with a fresh RSA key the realm never saw (kid: reuse a real one or not)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"kid": kid or f"forged-{uuid.uuid4()}"}
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)
