"""A set of dev services run as `conceptor dev serve` children: for tests, benchmarks and tools."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from conceptor.platform.devservices import SERVICES, get_service
from conceptor.platform.devservices.launcher import probe_until_ready
from conceptor.platform.settings import Settings


class LocalStack:
    """Starts services through the same launcher Tilt uses, waits for real readiness, stops them."""

    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        services: Iterable[str] = tuple(SERVICES),
    ) -> None:
        self.settings = settings
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.services = [get_service(name).name for name in services]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop_service
        self._logs[name] = log
        proc = subprocess.Popen(
            [sys.executable, "-m", "conceptor", "dev", "serve", name],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    async def wait_ready(self, names: Iterable[str], *, timeout: float) -> dict[str, str]:
        names = list(names)

        async def one(name: str) -> str:
            proc = self.procs.get(name)
            return await probe_until_ready(
                self.settings,
                get_service(name),
                timeout=timeout,
                alive=(lambda: proc.poll() is None) if proc else (lambda: True),
            )

        try:
            results = await asyncio.gather(*(one(n) for n in names))
        except (RuntimeError, TimeoutError) as exc:
            msg = f"{exc}; logs in {self.log_dir}"
            raise RuntimeError(msg) from exc
        return dict(zip(names, results, strict=True))

    def start(self, *, timeout: float = 300.0) -> dict[str, float]:
        """Start every service in parallel; returns seconds until each was ready."""
        started = time.monotonic()
        for name in self.services:
            self.spawn(name)
        ready_at: dict[str, float] = {}

        async def timed(name: str) -> None:
            await self.wait_ready([name], timeout=timeout)
            ready_at[name] = time.monotonic() - started

        async def all_ready() -> None:
            await asyncio.gather(*(timed(n) for n in self.services))

        asyncio.run(all_ready())
        return ready_at

    def stop_service(self, name: str, *, timeout: float = 45.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_process(proc, signal.SIGTERM, timeout=timeout)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            self.stop_service(name)


def stop_process(proc: subprocess.Popen[Any], sig: int, *, timeout: float) -> None:
    """Send `sig` to a process started in its own session and wait up to `timeout` for it to
    exit; if it has not, SIGKILL its whole process group (the children it started too)."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
