"""Run one dev service in the foreground: check ports, prepare data, start, wait until ready."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from conceptor.platform.devservices import DevService, NotReadyError, get_service
from conceptor.platform.devservices.readiness import ReadinessState, serve_readiness
from conceptor.platform.logging import get_logger
from conceptor.platform.settings import Settings

log = get_logger("conceptor.dev")
_PR_SET_PDEATHSIG = 1
_RECHECK_SECONDS = 3.0
_EXIT_GRACE_SECONDS = 10.0


class PortInUseError(RuntimeError):
    """A port a service needs is already taken by another process."""


class ServiceRunningError(RuntimeError):
    """An operation that needs the service stopped found it running."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports_free(settings: Settings, service: DevService) -> None:
    for port_name in (*service.ports, "launcher_" + service.name.replace("-", "_")):
        port = settings.port(port_name)
        if port_in_use(settings.host, port):
            msg = (
                f"port {port} ({port_name}) needed by service {service.name!r} is already in use "
                f"on {settings.host}: stop whatever listens there (`ss -ltnp 'sport = :{port}'`) "
                "or choose another TILT_PORT_PREFIX"
            )
            raise PortInUseError(msg)


def _child_setup(run_as: str | None) -> Callable[[], None]:
    """preexec_fn: drop to `run_as` when root, and die with the launcher (PDEATHSIG)."""
    entry = pwd.getpwnam(run_as) if run_as and os.geteuid() == 0 else None

    def setup() -> None:
        if entry is not None:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
        # Set after setuid: a credential change clears the parent-death signal.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


async def probe_until_ready(
    settings: Settings,
    service: DevService,
    *,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> str:
    """Probe every 0.25 s until a real request succeeds; raise with the last reason on timeout."""
    deadline = time.monotonic() + timeout
    last = "no probe ran"
    while time.monotonic() < deadline:
        if not alive():
            msg = f"{service.name} exited before it became ready (last probe: {last})"
            raise RuntimeError(msg)
        try:
            return await asyncio.wait_for(service.probe(settings), timeout=10)
        except (NotReadyError, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
        await asyncio.sleep(0.25)
    msg = f"{service.name} was not ready after {timeout:.0f}s: {last}"
    raise TimeoutError(msg)


def probe_once(settings: Settings, name: str) -> str:
    service = get_service(name)
    return asyncio.run(asyncio.wait_for(service.probe(settings), timeout=10))


def reset(settings: Settings, name: str) -> Path:
    """Wipe a service's data directory; refuses while the service is running."""
    service = get_service(name)
    busy = [settings.port(p) for p in service.ports if port_in_use(settings.host, settings.port(p))]
    if busy:
        msg = f"{name} is running (port {busy[0]} in use): stop it before resetting its data"
        raise ServiceRunningError(msg)
    data_dir = settings.service_dir(name)
    shutil.rmtree(data_dir, ignore_errors=True)
    return data_dir


def serve(settings: Settings, name: str) -> int:
    """Run `name` in the foreground until it exits or we are signalled; returns its exit code."""
    service = get_service(name)
    check_ports_free(settings, service)
    data_dir = settings.service_dir(name)
    service.prepare(settings, data_dir)
    argv = service.command(settings, data_dir)
    env = {**os.environ, **service.environ(settings, data_dir)}
    slog = log.bind(service=name)
    slog.info(
        "starting", data_dir=str(data_dir), ports={p: settings.port(p) for p in service.ports}
    )
    state = ReadinessState(service=name)
    serve_readiness(settings.host, settings.launcher_port(name), state)
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=data_dir,
        start_new_session=True,
        preexec_fn=_child_setup(service.run_as),
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        slog.info("stopping", signal=signal.Signals(signum).name)
        _signal_group(proc.pid, signal.SIGTERM)
        timer = threading.Timer(service.stop_timeout, _kill_and_watch, (proc.pid,))
        timer.daemon = True
        timer.start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    monitor = threading.Thread(
        target=lambda: asyncio.run(_monitor(settings, service, proc, stopping, state, stop)),
        name="monitor",
        daemon=True,
    )
    monitor.start()
    code = proc.wait()
    stopping.set()
    # Not readiness.shutdown(): it could only block here; its socket closes with the process.
    # Children in the group (kc.sh's java) may outlive the leader: take them down too.
    _signal_group(proc.pid, signal.SIGKILL)
    slog.info("exited", code=code)
    if stopping.is_set() and code in (0, -signal.SIGTERM, 143):
        return 0
    return code or 1


async def _monitor(
    settings: Settings,
    service: DevService,
    proc: subprocess.Popen[bytes],
    stopping: threading.Event,
    state: ReadinessState,
    stop: Callable[[int, FrameType | None], None],
) -> None:
    """Become ready (bootstrap included), then keep probing so /ready tracks the real service."""
    slog = log.bind(service=service.name)
    started = time.monotonic()

    def alive() -> bool:
        return proc.poll() is None and not stopping.is_set()

    try:
        if service.post_start is not None:
            # Wait for the server itself, then bootstrap; the real probe runs after that.
            await _wait_port(settings, service, alive)
            await _retry_post_start(settings, service, alive)
        detail = await probe_until_ready(
            settings, service, timeout=service.start_timeout, alive=alive
        )
    except (RuntimeError, TimeoutError) as exc:
        if alive():
            slog.error("not ready", reason=str(exc))
            state.update(ready=False, detail=str(exc))
            stop(signal.SIGTERM, None)
        return
    state.update(ready=True, detail=detail)
    slog.info(
        "ready",
        detail=detail,
        seconds=round(time.monotonic() - started, 2),
        links=_links(settings, service) or None,
    )
    while alive():
        await asyncio.sleep(_RECHECK_SECONDS)
        try:
            detail = await asyncio.wait_for(service.probe(settings), timeout=10)
        except (NotReadyError, TimeoutError) as exc:
            if state.ready:
                slog.warning("no longer ready", reason=str(exc))
            state.update(ready=False, detail=str(exc))
        else:
            state.update(ready=True, detail=detail)


async def _wait_port(settings: Settings, service: DevService, alive: Callable[[], bool]) -> None:
    port = settings.port(service.ports[0])
    deadline = time.monotonic() + service.start_timeout
    while time.monotonic() < deadline and alive():
        try:
            _r, w = await asyncio.open_connection(settings.host, port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)


async def _retry_post_start(
    settings: Settings, service: DevService, alive: Callable[[], bool]
) -> None:
    assert service.post_start is not None
    deadline = time.monotonic() + service.start_timeout
    while True:
        try:
            await service.post_start(settings)
            return
        except Exception as exc:  # the server may still be starting up (e.g. recovery)
            if time.monotonic() > deadline or not alive():
                msg = f"{service.name} bootstrap failed: {exc}"
                raise RuntimeError(msg) from exc
            await asyncio.sleep(0.25)


def _kill_and_watch(pid: int) -> None:
    """The server ignored SIGTERM for too long: kill its group; if even then the launcher does
    not get to exit (a wedged thread), leave anyway, since Tilt waits for this process."""
    _signal_group(pid, signal.SIGKILL)
    watchdog = threading.Timer(_EXIT_GRACE_SECONDS, os._exit, (1,))
    watchdog.daemon = True
    watchdog.start()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _links(settings: Settings, service: DevService) -> dict[str, str]:
    ports = settings.all_ports()
    return {label: url.format(**ports) for label, url in service.links.items()}
