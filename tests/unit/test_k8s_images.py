"""The app and Temporal images: lint-clean, and every command line they run really exists."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer

from conceptor.cli import app
from conceptor.commands.k8s_manifests import APP_COMMANDS, worker_command
from conceptor.platform.devservices import temporal as local_temporal
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import venv_tool
from conceptor.workers.declarations import QUEUES
from tests.helpers import wait_until
from tests.unit.k8s_support import (
    APP_DOCKERFILE,
    DEV_ENV,
    TEMPORAL_DOCKERFILE,
    by_kind,
    containers,
    dockerfile_instruction,
    render_base,
)

ENTRYPOINT_SCRIPT = DEV_ENV / "app-entrypoint.sh"


def _resolve(argv: list[str]) -> Any:
    """Parse ARGV against the real `conceptor` typer app, as the shell would run it."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, f"{argv[0]} is not a console script of the package"
    command: Any = typer.main.get_command(app)
    name, words = argv[0], argv[1:]
    ctx = command.make_context(name, [], resilient_parsing=True)
    while hasattr(command, "get_command"):  # a group: descend by the next word
        name = words.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`{' '.join(argv)}`: no subcommand {name!r}"
        command = sub
    # Unknown options, missing arguments and bad types raise here, as on the command line.
    return command.make_context(name, words)


def test_dockerfiles_are_lint_clean() -> None:
    """hadolint (any finding fails, style included) passes on both Dockerfiles."""
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [
            str(hadolint),
            "--failure-threshold",
            "style",
            str(APP_DOCKERFILE),
            str(TEMPORAL_DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_entrypoint_script_is_shellcheck_clean() -> None:
    """shellcheck passes on the app image's entrypoint."""
    result = subprocess.run(
        ["shellcheck", str(ENTRYPOINT_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_app_image_default_command_is_a_real_subcommand() -> None:
    """The image's CMD is `conceptor api serve`, run by the copied entrypoint."""
    cmd = dockerfile_instruction(APP_DOCKERFILE, "CMD")
    assert cmd == APP_COMMANDS["api"]
    assert _resolve(cmd).command.name == "serve"
    assert dockerfile_instruction(APP_DOCKERFILE, "ENTRYPOINT") == ["/usr/local/bin/app-entrypoint"]
    assert (
        "COPY --chown=10001:10001 _dev-env/app-entrypoint.sh /usr/local/bin/app-entrypoint"
        in APP_DOCKERFILE.read_text()
    )
    assert ENTRYPOINT_SCRIPT.stat().st_mode & 0o111 == 0o111
    assert re.search(r"(?m)^USER 10001$", APP_DOCKERFILE.read_text())


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_worker_command_lines_parse_against_the_cli(queue: str) -> None:
    """`conceptor worker <queue> --index <i>` parses with the real typer app, for every queue."""
    ctx = _resolve(worker_command(queue, 3))
    assert ctx.params == {"queue": queue, "index": 3}


@pytest.mark.parametrize("component", sorted(APP_COMMANDS))
def test_app_command_lines_parse_against_the_cli(component: str) -> None:
    """`conceptor api serve` and `conceptor panel serve` are real subcommands."""
    ctx = _resolve(APP_COMMANDS[component])
    assert ctx.command.name == "serve"
    assert ctx.parent is None or ctx.info_name == "serve"


def test_a_wrong_command_line_is_refused() -> None:
    """The check itself can fail: an unknown subcommand or option is reported."""
    with pytest.raises(AssertionError, match="no subcommand 'wroker'"):
        _resolve(["conceptor", "wroker", "core"])
    with pytest.raises(typer.TyperException, match="No such option: --idx"):
        _resolve(["conceptor", "worker", "core", "--idx", "0"])


def test_temporal_image_runs_local_modes_flags() -> None:
    """The Temporal image runs `temporal server start-dev` with local mode's flags."""
    entrypoint = dockerfile_instruction(TEMPORAL_DOCKERFILE, "ENTRYPOINT")
    assert entrypoint[:3] == ["temporal", "server", "start-dev"]
    local = local_temporal.command(Settings(), Path("/data"))
    assert {w for w in entrypoint if w.startswith("--")} == {w for w in local if w.startswith("--")}
    # The pinned CLI parses the whole line (an unknown flag fails before --help is honoured).
    parsed = subprocess.run(
        [str(venv_tool("temporal")), *entrypoint[1:], "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    refused = subprocess.run(
        [str(venv_tool("temporal")), *entrypoint[1:], "--no-such-flag", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "unknown flag: --no-such-flag" in refused.stderr


def test_temporal_probe_is_a_real_cli_command() -> None:
    """The Temporal pod's exec probe is a `temporal` command line the pinned CLI accepts."""
    deployment = by_kind(render_base(), "Deployment")["localdev-temporal"]
    probe = next(containers(deployment))["readinessProbe"]["exec"]["command"]
    assert probe[0] == "temporal"
    parsed = subprocess.run(
        [str(venv_tool("temporal")), *probe[1:], "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    assert "namespace describe" in parsed.stdout


CHILD = """
trap 'echo drained >>"$LOG"; exit 0' TERM
echo started >>"$LOG"
while :; do sleep 0.05; done
"""


def test_entrypoint_restarts_in_place_and_forwards_sigterm(tmp_path: Path) -> None:
    """A live update restarts the command in the same container; SIGTERM drains and exits."""
    log = tmp_path / "child.log"
    env = {"APP_STATE_DIR": str(tmp_path), "LOG": str(log), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(["sh", str(ENTRYPOINT_SCRIPT), "sh", "-c", CHILD], env=env)
    try:
        wait_until(lambda: log.exists() and log.read_text() == "started\n", timeout=10)
        first = int((tmp_path / "app.pid").read_text())
        # What Tilt's live_update runs after syncing files.
        subprocess.run(
            ["sh", "-c", f'touch {tmp_path}/app.restart && kill -TERM "$(cat {tmp_path}/app.pid)"'],
            check=True,
        )
        wait_until(lambda: log.read_text() == "started\ndrained\nstarted\n", timeout=10)
        assert int((tmp_path / "app.pid").read_text()) != first
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert log.read_text() == "started\ndrained\nstarted\ndrained\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_entrypoint_exits_with_a_crashed_commands_code(tmp_path: Path) -> None:
    """Without a restart request the container ends with the command's exit code."""
    result = subprocess.run(
        ["sh", str(ENTRYPOINT_SCRIPT), "sh", "-c", "exit 3"],
        env={"APP_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=10,
        check=False,
    )
    assert result.returncode == 3


def test_build_context_holds_every_copied_path() -> None:
    """What the Dockerfile copies is in Tilt's `only` list and in the dockerignore allowlist."""
    sources = [
        word.rstrip("/")
        for line in re.findall(r"(?m)^COPY (.+)$", APP_DOCKERFILE.read_text())
        for word in line.split()[:-1]
        if not word.startswith("--") and word != "."
    ]
    # The last COPY takes the rest of the context: the team's code Tilt adds to `only`.
    assert re.findall(r"(?m)^COPY .*$", APP_DOCKERFILE.read_text())[-2:] == [
        "COPY --chown=10001:10001 . ./",
        "COPY --chown=10001:10001 _dev-env/app-entrypoint.sh /usr/local/bin/app-entrypoint",
    ]
    tiltfile = (DEV_ENV / "tilt" / "k8s.tiltfile").read_text()
    only_block = re.search(r"(?s)APP_CONTEXT = \[(.*?)\]", tiltfile)
    assert only_block is not None
    only = set(re.findall(r"'([^']+)'", only_block.group(1)))
    allowed = {
        line[1:].rstrip("/")
        for line in (DEV_ENV / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(sources) == only == allowed
    assert all((REPO_ROOT / path).exists() for path in sources)
