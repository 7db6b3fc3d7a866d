"""Real `conceptor worker` processes for tests: start, read health and JSON logs, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import wait_until

CONCEPTOR = Path(sys.executable).parent / "conceptor"


class WorkerProc:
    """One `conceptor worker <queue> --index <i>` child with its log in `log_dir`."""

    def __init__(
        self, queue: str, index: int, *, port: int, env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.queue = queue
        self.index = index
        self.port = port
        self.log_path = log_dir / f"worker-{queue}-{index}-{os.getpid()}-{id(self)}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(CONCEPTOR), "worker", queue, "--index", str(index)],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """(status code, JSON body) of /healthz, or None when nothing answers."""
        try:
            resp = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
        except httpx.HTTPError:
            return None
        return resp.status_code, resp.json()

    def wait_polling(self, timeout: float = 60) -> dict[str, Any]:
        def polling() -> bool:
            if self.proc.poll() is not None:
                msg = f"worker exited with {self.proc.returncode}: {self.log_path.read_text()}"
                raise AssertionError(msg)
            got = self.health()
            return got is not None and got[0] == 200

        wait_until(polling, timeout=timeout, message=f"{self.queue}-{self.index} never polled")
        got = self.health()
        assert got is not None
        return got[1]

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line the worker wrote so far."""
        lines = []
        for raw in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return lines

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL if it does not drain in time."""
        self.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.kill()
