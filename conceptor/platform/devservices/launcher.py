"""Run one dev service in the foreground: check ports, prepare data, start, wait until ready."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conceptor.platform.devservices import DevService, NotReadyError, get_service
from conceptor.platform.devservices.readiness import ReadinessState, readiness_server
from conceptor.platform.logging import get_logger
from conceptor.platform.retrying import retry_until
from conceptor.platform.settings import Settings

log = get_logger("conceptor.dev")
_RECHECK_SECONDS = 3.0
_NOT_READY = "not ready"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# An exit after our SIGTERM is a clean stop, whichever way the server reports it.
_CLEAN_EXITS = (0, -signal.SIGTERM, 128 + signal.SIGTERM)


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


async def probe_until_ready(
    settings: Settings,
    service: DevService,
    *,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
) -> str:
    """Probe every 0.25 s until a real request succeeds; raise with the last reason on timeout."""
    last = "no probe ran"
    try:
        async for attempt in retry_until(timeout, every=0.25, on=(NotReadyError, TimeoutError)):
            with attempt:
                if not alive():
                    msg = f"{service.name} exited before it became ready (last probe: {last})"
                    raise RuntimeError(msg)
                try:
                    return await asyncio.wait_for(service.probe(settings), timeout=10)
                except (NotReadyError, TimeoutError) as exc:
                    last = str(exc) or type(exc).__name__
                    raise
    except (NotReadyError, TimeoutError):
        pass
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
    log.info(
        "starting",
        service=name,
        data_dir=str(data_dir),
        ports={p: settings.port(p) for p in service.ports},
    )
    state = ReadinessState(service=name)
    with readiness_server(settings.host, settings.launcher_port(name), state):
        return asyncio.run(_supervise(settings, service, argv, env, data_dir, state))


def _spawn_options(run_as: str | None) -> dict[str, Any]:
    """Popen options: the server leads its own process group, as `run_as` when we are root."""
    options: dict[str, Any] = {"process_group": 0}
    if run_as and os.geteuid() == 0:
        entry = pwd.getpwnam(run_as)
        options.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return options


def _die_with_launcher(argv: list[str]) -> list[str]:
    """Prefix argv so the server gets SIGTERM if the launcher is killed outright (SIGKILL).

    `setpriv` sets the parent-death signal after Popen has switched user (a credential change
    would clear it) and then execs the server: the server keeps its pid and process group.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


async def _supervise(
    settings: Settings,
    service: DevService,
    argv: list[str],
    env: dict[str, str],
    data_dir: Path,
    state: ReadinessState,
) -> int:
    """Start the server, stop it on a signal (or when it never gets ready); its exit code."""
    slog = log.bind(service=service.name)
    stop = asyncio.Event()
    reasons: list[str] = []

    def request_stop(reason: str) -> None:
        if not stop.is_set():
            reasons.append(reason)
            stop.set()

    loop = asyncio.get_running_loop()
    # Installed before the spawn: a signal from here on always stops the server too.
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, request_stop, sig.name)
    proc = await asyncio.create_subprocess_exec(
        *_die_with_launcher(argv), env=env, cwd=data_dir, **_spawn_options(service.run_as)
    )
    exited = asyncio.create_task(proc.wait())
    monitor = asyncio.create_task(_monitor(settings, service, exited, state, request_stop))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set() and not exited.done():
        why = reasons[0]
        slog.info("stopping", **({"reason": why} if why == _NOT_READY else {"signal": why}))
        _signal_group(proc.pid, signal.SIGTERM)
        done, _ = await asyncio.wait({exited}, timeout=service.stop_timeout)
        if not done:
            slog.warning("did not stop in time: killing it", seconds=service.stop_timeout)
            _signal_group(proc.pid, signal.SIGKILL)
    code = await exited
    monitor.cancel()
    stopping.cancel()
    # Children in the group (kc.sh's java) may outlive the leader: take them down too.
    _signal_group(proc.pid, signal.SIGKILL)
    slog.info("exited", code=code)
    if stop.is_set() and reasons[0] != _NOT_READY and code in _CLEAN_EXITS:
        return 0
    return code or 1


async def _monitor(
    settings: Settings,
    service: DevService,
    exited: asyncio.Task[int],
    state: ReadinessState,
    request_stop: Callable[[str], None],
) -> None:
    """Become ready (bootstrap included), then keep probing so /ready tracks the real service."""
    slog = log.bind(service=service.name)
    started = time.monotonic()

    def alive() -> bool:
        return not exited.done()

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
            request_stop(_NOT_READY)
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
    # Giving up is not an error here: the readiness probe that follows says what is wrong.
    with contextlib.suppress(OSError):
        retrying = retry_until(service.start_timeout, every=0.1, on=OSError, alive=alive)
        async for attempt in retrying:
            with attempt:
                _r, w = await asyncio.open_connection(settings.host, port)
                w.close()


async def _retry_post_start(
    settings: Settings, service: DevService, alive: Callable[[], bool]
) -> None:
    assert service.post_start is not None
    try:
        # Any failure is retried: the server may still be starting up (e.g. recovery).
        retrying = retry_until(service.start_timeout, every=0.25, on=Exception, alive=alive)
        async for attempt in retrying:
            with attempt:
                await service.post_start(settings)
    except Exception as exc:
        msg = f"{service.name} bootstrap failed: {exc}"
        raise RuntimeError(msg) from exc


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _links(settings: Settings, service: DevService) -> dict[str, str]:
    ports = settings.all_ports()
    return {label: url.format(**ports) for label, url in service.links.items()}
