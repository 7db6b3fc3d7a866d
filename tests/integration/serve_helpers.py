"""Running `conceptor dev …` as a real subprocess on a private, free port prefix."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from conceptor.platform.devservices import get_service
from conceptor.platform.devservices.launcher import probe_until_ready
from conceptor.platform.settings import Settings

TEST_PORT_PREFIX = os.environ.get("CONCEPTOR_TEST_PORT_PREFIX", "451")

_claimed: set[int] = set()


def block_is_free(prefix: int) -> bool:
    """True when nothing is bound anywhere in the prefix's 100-port block."""
    for port in range(prefix * 100, prefix * 100 + 100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_prefix() -> str:
    """A prefix in 500..654 whose whole block is free, never the session stack's nor 440.

    The search starts at a point derived from CONCEPTOR_TEST_PORT_PREFIX so that test runs
    on different prefixes on one machine start looking in different places.
    """
    span = range(500, 655)
    start = zlib.crc32(TEST_PORT_PREFIX.encode()) % len(span)
    for i in range(len(span)):
        prefix = span[(start + i) % len(span)]
        if prefix in _claimed or str(prefix) == TEST_PORT_PREFIX:
            continue
        if block_is_free(prefix):
            _claimed.add(prefix)
            return str(prefix)
    msg = "no free 100-port block in 50000..65499"
    raise RuntimeError(msg)


@contextmanager
def data_dir() -> Iterator[Path]:
    """A throwaway .localdev the `postgres` user can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="conceptor-cli-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class DevEnv:
    """The environment of one private stack: its prefix, data dir and extra settings."""

    prefix: str
    localdev: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TILT_PORT_PREFIX": self.prefix,
            "CENTRAL_LOCALDEV_DIR": str(self.localdev),
            "CENTRAL_ENVIRONMENT": "test",
            "CENTRAL_LOG_FORMAT": "json",
            **self.extra,
        }

    @property
    def settings(self) -> Settings:
        return Settings(port_prefix=self.prefix, localdev_dir=self.localdev, environment="test")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`conceptor dev ARGS…` to completion."""
        return subprocess.run(
            [sys.executable, "-m", "conceptor", "dev", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, service: str) -> subprocess.Popen[str]:
        """`conceptor dev serve SERVICE` in the background (its own session, like under Tilt)."""
        log = open(self.localdev / f"serve-{service}.log", "a")  # noqa: SIM115 - child owns it
        with log:
            return subprocess.Popen(
                [sys.executable, "-m", "conceptor", "dev", "serve", service],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )

    def start(self, service: str, *, timeout: float = 90) -> subprocess.Popen[str]:
        """Spawn the launcher and return once the service answers its real probe."""
        proc = self.spawn(service)
        try:
            asyncio.run(
                probe_until_ready(
                    self.settings,
                    get_service(service),
                    timeout=timeout,
                    alive=lambda: proc.poll() is None,
                )
            )
        except (RuntimeError, TimeoutError) as exc:
            stop(proc)
            msg = f"{exc}\n--- launcher log ---\n{self.log_of(service)}"
            raise AssertionError(msg) from exc
        return proc

    def log_of(self, service: str) -> str:
        return (self.localdev / f"serve-{service}.log").read_text()

    def listening(self, service: str) -> list[int]:
        """The service's ports that something is listening on."""
        settings = self.settings
        return [
            settings.port(name)
            for name in get_service(service).ports
            if port_accepts(settings.host, settings.port(name))
        ]


def port_accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def stop(proc: subprocess.Popen[str], *, timeout: float = 45) -> int:
    """SIGTERM the launcher, as Tilt does, and wait for it to exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc, every thread's list)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return kids


def group_members(pgid: int) -> list[int]:
    """Every live process whose process group is `pgid` (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members
