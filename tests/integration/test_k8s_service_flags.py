"""Every flag a service pod passes exists in the pinned release local mode runs."""

from __future__ import annotations

import re
import subprocess

import pytest

from conceptor.platform.tools import cached_tool, venv_tool
from tests.unit.k8s_support import by_kind, containers, render_base

pytestmark = pytest.mark.integration


def _argv(service: str) -> list[str]:
    container = next(containers(by_kind(render_base(), "Deployment")[f"localdev-{service}"]))
    return [*container.get("command", []), *container.get("args", [])]


def _help(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return result.stdout + result.stderr


def _flags(argv: list[str]) -> list[str]:
    return [word.split("=", 1)[0] for word in argv if word.startswith("--")]


@pytest.mark.parametrize(
    ("service", "help_argv"),
    [
        (
            "keycloak",
            lambda: [
                str(cached_tool("keycloak", "KEYCLOAK_VERSION", "bin/kc.sh")),
                "start-dev",
                "--help",
            ],
        ),
        (
            "mailpit",
            lambda: [str(cached_tool("mailpit", "MAILPIT_VERSION", "bin/mailpit")), "--help"],
        ),
        (
            "minio",
            lambda: [str(cached_tool("minio", "MINIO_VERSION", "bin/minio")), "server", "--help"],
        ),
        ("front-door", lambda: [str(venv_tool("caddy")), "run", "--help"]),
    ],
)
def test_pod_flags_exist_in_the_pinned_release(service: str, help_argv: object) -> None:
    """Each --flag of the pod's command line is listed by the same program's --help."""
    assert callable(help_argv)
    text = _help(help_argv())
    flags = _flags(_argv(service))
    assert flags, f"{service} passes no flags"
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
    assert missing == [], f"{service}: not in `{' '.join(help_argv()[1:])}`"


def test_the_flag_check_can_fail() -> None:
    """A made-up flag is reported missing from real help text."""
    text = _help([str(venv_tool("caddy")), "run", "--help"])
    assert re.search(r"(?<![\w-])--config(?![\w-])", text)
    assert not re.search(r"(?<![\w-])--configure-all(?![\w-])", text)
