"""How long the README's two commands take on a fresh machine: a new clone, empty caches.

    python3 _dev-env/scripts/cold_setup.py up      # `make up` until every Tilt resource is green
    python3 _dev-env/scripts/cold_setup.py test    # `make test` until it exits

Each run clones this checkout's HEAD into a new folder and gives the command a new HOME with
only what the machine's image put there (its language toolchains and registry settings, see
MACHINE): no cached tools, no Go, npm, yarn, pip or Maven caches, no venv (Debian packages stay
as the machine has them, as on a fresh machine after its image). `up` watches Tilt's API (`tilt
get uiresources`) and stops the stack with `make down` once everything is green; `test` waits
for `make test` to exit. Writes a JSON record (minutes, exit status, load average, CPU minutes:
the machine's and the command's own) to
bench/results/cold_<command>.json of this checkout, and prints where the time went (the
set-up's own per-step durations). Uses only the standard library: it runs before any venv.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 90 * 60
PREFIX = "464"  # its own ports: <prefix><2 digits>, Tilt on 10000+prefix
# What a fresh machine's HOME already holds: settings copied, toolchains linked (never caches).
MACHINE_FILES = (".config/go/env", ".npmrc", ".gitconfig", ".profile", ".bashrc")
MACHINE_TOOLCHAINS = (".pyenv", ".cargo", ".rustup")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _busy_cpu_s() -> float:
    """Every process's CPU seconds on this machine so far (/proc/stat's first line, not idle)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _green(resource: dict[str, Any]) -> bool:
    status = resource.get("status") or {}
    update = status.get("updateStatus")
    runtime = status.get("runtimeStatus")
    disabled = (status.get("disableStatus") or {}).get("state") == "Disabled"
    # A manual resource that `tilt up` does not start (reset-postgres) waits for a click: on
    # the dashboard it is idle, not red or pending.
    idle = (
        update == "none" and status.get("triggerMode", 0) != 0 and not status.get("lastDeployTime")
    )
    ok = update in ("ok", "not_applicable") and runtime in ("ok", "not_applicable")
    return disabled or idle or ok


def _tilt(home: Path) -> Path | None:
    found = sorted((home / ".cache" / "conceptor" / "tools").glob("tilt-*/bin/tilt"))
    return found[0] if found else None


def _resources(tilt: Path, port: int, env: dict[str, str]) -> list[dict[str, Any]] | None:
    argv = [str(tilt), "get", "uiresources", "-o", "json", "--port", str(port)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        return None
    items: list[dict[str, Any]] = json.loads(done.stdout).get("items", [])
    return items


def _durations(home: Path) -> dict[str, float]:
    """The set-up's own record of each step's seconds (what `dev-setup.bash` prints)."""
    folder = home / ".cache" / "conceptor" / "tools" / ".durations"
    out: dict[str, float] = {}
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        try:
            out[path.name] = float(path.read_text().split()[0])
        except (ValueError, IndexError):
            continue
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _machine_home(mine: Path, fresh: Path) -> None:
    for name in MACHINE_FILES:
        if (mine / name).is_file():
            (fresh / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(mine / name, fresh / name)
    for name in MACHINE_TOOLCHAINS:
        if (mine / name).is_dir():
            (fresh / name).symlink_to(mine / name)


def run(command: str, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"conceptor-cold-{command}-"))
    # As a clone in a home folder would be: PostgreSQL runs as `postgres` and must reach its
    # data under the clone (mkdtemp's folder is private to its owner).
    work.chmod(0o755)
    clone, home = work / "clone", work / "home"
    home.mkdir()
    _machine_home(Path.home(), home)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONCEPTOR_", "CENTRAL_", "TILT_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(HOME=str(home), TILT_PORT_PREFIX=PREFIX)
    port = 10000 + int(PREFIX)
    argv = ["make", command]
    if command == "up":
        argv.append(f"TILT_ARGS=--stream --port {port}")
    log_path = work / f"make-{command}.log"
    print(f"cold {command}: {clone} (HOME={home}), log {log_path}", flush=True)
    load_before = _load()
    busy_before, children_before = _busy_cpu_s(), _children_cpu_s()
    started = time.monotonic()
    record: dict[str, Any] = {"command": f"make {command}", "load_before": load_before}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            record.update(_wait(command, proc, home, port, env, started))
        finally:
            _stop(proc)
            if command == "up":
                subprocess.run(["make", "down"], cwd=clone, env=env, capture_output=True)
    record["load_after"] = _load()
    # What the machine's cores did meanwhile: the floor of any schedule is this over the cores.
    record["machine_busy_cpu_minutes"] = round((_busy_cpu_s() - busy_before) / 60, 1)
    record["command_cpu_minutes"] = round((_children_cpu_s() - children_before) / 60, 1)
    record["cores"] = os.cpu_count()
    record["setup_steps_s"] = _durations(home)
    record["log"] = str(log_path)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
        record["log"] = "(removed; --keep keeps it)"
    return record


def _wait(
    command: str,
    proc: subprocess.Popen[bytes],
    home: Path,
    port: int,
    env: dict[str, str],
    started: float,
) -> dict[str, Any]:
    """`make test`: until it exits. `make up`: until Tilt runs, then until all is green."""
    deadline = started + TIMEOUT_S
    tilt_up_at: float | None = None
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            return {"exit": code, "minutes": round((time.monotonic() - started) / 60, 2)}
        if command == "up":
            tilt = _tilt(home)
            resources = _resources(tilt, port, env) if tilt else None
            if resources and tilt_up_at is None:
                tilt_up_at = time.monotonic()
            if resources and all(_green(r) for r in resources):
                now = time.monotonic()
                return {
                    "exit": 0,
                    "minutes": round((now - started) / 60, 2),
                    "setup_minutes": round(((tilt_up_at or now) - started) / 60, 2),
                    "stack_minutes": round((now - (tilt_up_at or now)) / 60, 2),
                    "resources": len(resources),
                }
        time.sleep(2)
    return {"exit": None, "minutes": round(TIMEOUT_S / 60, 2), "timed_out": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "test"))
    parser.add_argument("--keep", action="store_true", help="keep the clone, HOME and log")
    args = parser.parse_args()
    record = run(args.command, args.keep)
    out = REPO / "bench" / "results" / f"cold_{args.command}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    print(f"results: {out}")
    sys.exit(0 if record.get("exit") == 0 else 1)


if __name__ == "__main__":
    main()
