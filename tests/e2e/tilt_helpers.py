"""Running the real `tilt` against this repo's Tiltfile, isolated on its own port prefix."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

from conceptor.platform.devservices.stack import stop_process
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"


def tilt_prefix(default: str) -> str:
    """The test's port prefix: CONCEPTOR_TILT_TEST_PREFIX when set (to keep clear of other
    stacks on the machine), else the test's own default block."""
    return os.environ.get("CONCEPTOR_TILT_TEST_PREFIX", default)


def tilt_binary() -> Path:
    return cached_tool("tilt", "TILT_VERSION", "bin/tilt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tilt_env(prefix: str, localdev: Path, **extra: str) -> dict[str, str]:
    localdev.mkdir(parents=True, exist_ok=True)
    # PostgreSQL runs as `postgres`: the throwaway dir and its parent must be searchable.
    for path in (localdev.parent, localdev):
        path.chmod(0o755)
    env = {
        **os.environ,
        "TILT_INFRA": "local",
        "TILT_PORT_PREFIX": prefix,
        "CENTRAL_LOCALDEV_DIR": str(localdev),
        "CENTRAL_LOG_FORMAT": "json",
        # Keep Tilt's own state (and any dev tilt's analytics prompt) out of $HOME.
        "TILT_DISABLE_ANALYTICS": "1",
    }
    env.update(extra)
    return env


def run_tilt(
    args: list[str], env: dict[str, str], *, timeout: float, log_name: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run tilt; with log_name its output is kept in tests/artifacts/<log_name>.log."""
    result = subprocess.run(
        [str(tilt_binary()), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if log_name is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{log_name}.log").write_text(result.stdout + result.stderr)
    return result


def start_tilt_up(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`tilt up --stream` in its own session, as a terminal runs it; output appended to `log`."""
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [str(tilt_binary()), "up", "--stream", "--port", str(port), *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_tilt_up(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Ctrl-C (Tilt stops every serve_cmd process on exit); its whole group killed if it hangs."""
    stop_process(proc, signal.SIGINT, timeout=timeout)


def listening_ports(settings: Settings) -> list[int]:
    """The block's ports something still accepts connections on."""
    ports = list(settings.all_ports().values())
    ports += [worker_port(settings, q, i) for q in ("core", "media") for i in range(4)]
    busy = []
    for port in ports:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((settings.host, port)) == 0:
                busy.append(port)
    return busy


def ready_events(output: str) -> dict[str, dict[str, object]]:
    """The launcher's JSON `ready` lines in Tilt's log, by service."""
    found: dict[str, dict[str, object]] = {}
    for line in output.splitlines():
        start = line.find("{")
        if start < 0 or '"ready"' not in line:
            continue
        try:
            event = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if event.get("event") == "ready" and "service" in event:
            found[str(event["service"])] = event
    return found
