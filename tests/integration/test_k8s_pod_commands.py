"""The pods' own commands, scripts and probes, run here against the real programs.

No cluster runs on these machines, so each pod's command line is run as a local process (ports
moved to a private block, binds to loopback) and its probe is asked exactly as the kubelet would.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conceptor.commands.k8s_manifests import app_manifests, to_dicts, worker_manifests
from conceptor.platform.settings import Settings
from conceptor.platform.tools import venv_tool
from tests.helpers import wait_until
from tests.integration.serve_helpers import DevEnv, data_dir, free_prefix, stop
from tests.unit.k8s_support import (
    DEV_ENV,
    TEMPORAL_DOCKERFILE,
    by_kind,
    containers,
    dockerfile_instruction,
    render_base,
)

pytestmark = pytest.mark.integration


def _private_ports(*names: str) -> dict[str, int]:
    """The ports of slots `names` (PORT_OFFSETS) in a 100-port block claimed for this test.

    Not bind-to-port-0-and-close: the kernel often hands a just-closed port out again (about
    one consecutive pair in a hundred), and Caddy binds its site and its admin endpoint with
    SO_REUSEPORT, so on a repeat both serve one port and the kernel splits the probes between
    them. A free_prefix block is checked free and claimed, and its slots never coincide.
    """
    settings = Settings(port_prefix=free_prefix())
    return {name: settings.port(name) for name in names}


# /proc/net/tcp{,6} local addresses that a connection to 127.0.0.1 can reach: loopback, the
# wildcard, and their IPv6 forms (v4-mapped loopback, ::).
_REACHES_LOOPBACK = {"0100007F", "00000000", "0" * 32, "0000000000000000FFFF00000100007F"}
_TCP_LISTEN = "0A"


def _listening_sockets(port: int) -> set[str]:
    """Inodes of the sockets listening on `port` that a connection to 127.0.0.1 can reach."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            listening = fields[3] == _TCP_LISTEN and int(hex_port, 16) == port
            if listening and address in _REACHES_LOOPBACK:
                inodes.add(fields[9])
    return inodes


def _sockets_of(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed between the listing and the readlink
            continue
        if target.startswith("socket:["):
            inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


def _holders(inodes: set[str]) -> list[str]:
    """`pid: command line` of each process this user can see that holds one of `inodes`."""
    holders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if _sockets_of(int(entry.name)) & inodes:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                holders.append(f"{entry.name}: {cmdline.strip()}")
        except OSError:  # gone, or another user's
            continue
    return holders


def _assert_sole_listener(proc: subprocess.Popen[bytes], port: int) -> None:
    """Fail unless `proc` listens on `port` and nothing else does.

    Caddy binds with SO_REUSEPORT, so another process of this user can bind the same port
    beside it and take a share of the connections: a probe could be answered by a stranger.
    """
    listening = _listening_sockets(port)
    ours = listening & _sockets_of(proc.pid)
    foreign = listening - ours
    if foreign:
        holders = "; ".join(_holders(foreign)) or "a process of another user"
        msg = f"port {port} is not only pid {proc.pid}'s: also listening there: {holders}"
        raise AssertionError(msg)
    if not ours:
        msg = f"pid {proc.pid} does not listen on port {port}"
        raise AssertionError(msg)


def _container(service: str) -> dict[str, Any]:
    return next(containers(by_kind(render_base(), "Deployment")[f"localdev-{service}"]))


def _generated(kind: str, prefix: str) -> dict[str, Any]:
    (obj,) = [
        o
        for o in render_base()
        if o["kind"] == kind and o["metadata"]["name"].startswith(prefix + "-")
    ]
    return obj


def _remap(words: list[str], mapping: dict[str, str]) -> list[str]:
    out = []
    for word in words:
        for old, new in mapping.items():
            word = word.replace(old, new)
        out.append(word)
    return out


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TemporalPod:
    """The Temporal image's ENTRYPOINT as a local process, ports moved to a private block."""

    def __init__(self, tmp_path: Path, running: list[subprocess.Popen[bytes]]) -> None:
        entrypoint = dockerfile_instruction(TEMPORAL_DOCKERFILE, "ENTRYPOINT")
        ports = _private_ports("temporal", "temporal_ui", "temporal_http", "temporal_metrics")
        image_ports = {
            "7233": "temporal",
            "8233": "temporal_ui",
            "7243": "temporal_http",
            "7244": "temporal_metrics",
        }
        mapping = {image: str(ports[name]) for image, name in image_ports.items()}
        mapping |= {"0.0.0.0": "127.0.0.1", "/data/temporal.db": str(tmp_path / "temporal.db")}
        self.argv = [str(venv_tool("temporal")), *_remap(entrypoint[1:], mapping)]
        probe = _container("temporal")["readinessProbe"]["exec"]["command"]
        self.probe = [str(venv_tool("temporal")), *_remap(probe[1:], mapping)]
        self.address = f"127.0.0.1:{mapping['7233']}"
        self.running = running

    def ready(self) -> bool:
        run = subprocess.run(self.probe, capture_output=True, check=False, timeout=10)
        return run.returncode == 0

    def start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.running.append(proc)

        def ready() -> bool:
            # A server that died (a port taken, say) fails now, not after the whole timeout.
            if proc.poll() is not None:
                msg = f"the Temporal pod exited with code {proc.returncode} before its probe passed"
                raise AssertionError(msg)
            return self.ready()

        wait_until(ready, timeout=60, message="the Temporal pod's probe never passed")
        return proc


def test_temporal_image_serves_its_probe_and_keeps_the_database(
    tmp_path: Path, running: list[subprocess.Popen[bytes]]
) -> None:
    """The image's ENTRYPOINT passes the pod's exec probe, and a restart keeps namespaces."""
    pod = TemporalPod(tmp_path, running)
    address = pod.address
    first = pod.start()
    create = [str(venv_tool("temporal")), "operator", "namespace", "create"]
    subprocess.run([*create, "--namespace", "kept", "--address", address], check=True)
    first.terminate()
    assert first.wait(timeout=30) == 0
    pod.start()
    describe = subprocess.run(
        [*create[:3], "describe", "kept", "--address", address],
        capture_output=True,
        text=True,
        check=False,
    )
    assert describe.returncode == 0, describe.stderr
    assert "kept" in describe.stdout


def test_front_door_pod_answers_its_probe_with_the_shared_caddyfile(
    tmp_path: Path, running: list[subprocess.Popen[bytes]]
) -> None:
    """Caddy with the generated ConfigMap and the pod's env answers the probe's /healthz."""
    container = _container("front-door")
    (caddyfile,) = _generated("ConfigMap", "localdev-front-door-caddyfile")["data"].values()
    (tmp_path / "Caddyfile").write_text(caddyfile)
    env = dict(by_kind(render_base(), "ConfigMap")["localdev-front-door-env"]["data"])
    ports = _private_ports("front_door", "front_door_admin")
    port = ports["front_door"]
    env |= {
        "FRONT_DOOR_PORT": str(port),
        "FRONT_DOOR_BIND": "127.0.0.1",
        "CADDY_ADMIN": f"127.0.0.1:{ports['front_door_admin']}",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    argv = _remap(container["command"], {"/etc/caddy/Caddyfile": str(tmp_path / "Caddyfile")})
    log = tmp_path / "caddy.log"
    with log.open("wb") as out:
        caddy = subprocess.Popen(
            [str(venv_tool("caddy")), *argv[1:]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    running.append(caddy)
    probe = container["readinessProbe"]["httpGet"]
    headers = {h["name"]: h["value"] for h in probe["httpHeaders"]}
    url = f"http://127.0.0.1:{port}{probe['path']}"

    def answers() -> bool:
        # A Caddy that died (a port taken, say) fails now, with its log, not after the timeout.
        if caddy.poll() is not None:
            msg = f"caddy exited with code {caddy.returncode}:\n{log.read_text()}"
            raise AssertionError(msg)
        try:
            return httpx.get(url, headers=headers, timeout=2).text == "ok"
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=30, message="the front-door pod's probe never passed")
    # An answer does not say who gave it: this Caddy must be the port's only listener, before
    # and after the request, so a process sharing the port is named, not taken for Caddy.
    _assert_sole_listener(caddy, port)
    # Without the probe's Host header Caddy matches no site: an empty 200 that proves nothing.
    bare = httpx.get(url, headers={"Host": "10.1.2.3"}, timeout=2)
    _assert_sole_listener(caddy, port)
    assert (bare.status_code, bare.text) == (200, "")


def test_postgres_init_script_creates_the_role_the_probe_logs_in_as() -> None:
    """The init script makes the app role and database; the readiness probe queries as it."""
    script = _container_init_script()
    secret = {
        k: base64.b64decode(v).decode()
        for k, v in by_kind(render_base(), "Secret")["localdev-postgres"]["data"].items()
    }
    # Names and a password that need quoting, so the script's psql variables are exercised.
    app = {"APP_USER": "k8s-app", "APP_DB": "k8s-app db", "APP_PASSWORD": 'it\'s a "pw"'}
    with data_dir() as localdev:
        dev = DevEnv(free_prefix(), localdev)
        proc = dev.start("postgres")
        try:
            base = {
                "PATH": "/usr/bin:/bin",
                "PGHOST": "127.0.0.1",
                "PGPORT": str(dev.settings.port("postgres")),
            }
            init = subprocess.run(
                ["sh", "-c", script],
                env=base | app | {"PGPASSWORD": secret["POSTGRES_PASSWORD"]},
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert init.returncode == 0, init.stderr
            probe = _container("postgres")["readinessProbe"]["exec"]["command"]
            asked = subprocess.run(
                probe,
                env=base | app | {"PGPASSWORD": app["APP_PASSWORD"]},
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert (asked.returncode, asked.stdout, asked.stderr) == (0, "1\n", "")
            refused = subprocess.run(
                probe,
                env=base | app | {"PGPASSWORD": "wrong"},
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert refused.returncode != 0
            assert 'password authentication failed for user "k8s-app"' in refused.stderr
        finally:
            stop(proc)


def _container_init_script() -> str:
    data = by_kind(render_base(), "ConfigMap")["localdev-postgres-init"]["data"]
    (script,) = data.values()
    return str(script)


def _pod_env(container: dict[str, Any], secret: dict[str, str]) -> dict[str, str]:
    """The container's env as the kubelet builds it: secret refs read, $(VAR) expanded."""
    env: dict[str, str] = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
        else:
            env[var["name"]] = secret[var["valueFrom"]["secretKeyRef"]["key"]]
    return env


def _run_pod(
    container: dict[str, Any], env: dict[str, str], running: list[subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], str]:
    """Run a container's entrypoint and args as a local process; return it and its probe URL."""
    proc = subprocess.Popen(
        ["sh", str(DEV_ENV / "app-entrypoint.sh"), *container["args"]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    running.append(proc)
    probe = container["readinessProbe"]["httpGet"]
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == probe["port"]]
    return proc, f"http://127.0.0.1:{port}{probe['path']}"


def test_worker_pod_turns_ready_against_temporal_and_drains_in_its_grace(
    tmp_path: Path, running: list[subprocess.Popen[bytes]]
) -> None:
    """A worker pod's entrypoint, args and env: /healthz 200 once polling; SIGTERM drains."""
    temporal = TemporalPod(tmp_path, running)
    temporal.start()
    prefix = free_prefix()
    (deployment,) = to_dicts(
        worker_manifests(
            Settings(port_prefix=prefix), core=1, counts={"media": 0}, image="conceptor-app:dev"
        )
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    secret = {
        k: base64.b64decode(v).decode()
        for k, v in by_kind(render_base(), "Secret")["localdev-postgres"]["data"].items()
    }
    env = _pod_env(container, secret)
    assert env["CENTRAL_POSTGRES_DSN"] == (
        f"postgresql://{secret['APP_USER']}:{secret['APP_PASSWORD']}"
        f"@localdev-postgres:5432/{secret['APP_DB']}"
    )
    # The one address this machine must move: no cluster DNS resolves localdev-temporal here.
    env |= {
        "CENTRAL_TEMPORAL_ADDRESS": temporal.address,
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "APP_STATE_DIR": str(tmp_path),
    }
    worker, url = _run_pod(container, env, running)

    def polling() -> bool:
        try:
            resp = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200 and resp.json()["status"] == "polling"

    wait_until(polling, timeout=90, message="the worker pod's readiness probe never passed")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=pod["terminationGracePeriodSeconds"]) == 0


@pytest.mark.parametrize("component", ["api", "panel"])
def test_app_pod_answers_its_probe(
    tmp_path: Path, running: list[subprocess.Popen[bytes]], component: str
) -> None:
    """The api and panel pods' entrypoint, args and env answer their readiness probe."""
    prefix = free_prefix()
    deployment, _service = to_dicts(
        app_manifests(Settings(port_prefix=prefix), components=[component], image="x:1")
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    secret = {"APP_USER": "u", "APP_PASSWORD": "p", "APP_DB": "d", "POSTGRES_PASSWORD": "s"}
    env = _pod_env(container, secret) | {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "APP_STATE_DIR": str(tmp_path),
    }
    _proc, url = _run_pod(container, env, running)

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).is_success
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=60, message=f"the {component} pod's readiness probe never passed")
