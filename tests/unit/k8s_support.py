"""Shared helpers of the Kubernetes tests: render the base, list containers, validate objects."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from conceptor.platform.settings import REPO_ROOT
from conceptor.platform.tools import venv_tool

DEV_ENV = REPO_ROOT / "_dev-env"
APP_DOCKERFILE = DEV_ENV / "Dockerfile"
TEMPORAL_DOCKERFILE = DEV_ENV / "k8s" / "temporal" / "Dockerfile"
K8S_VERSIONS = ("1.31.0", "1.37.0")
SERVICES = (
    "front-door",
    "redis",
    "mailpit",
    "temporal",
    "minio",
    "postgres",
    "keycloak",
    "db-tools",
)
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


@lru_cache(maxsize=1)
def _render() -> str:
    result = subprocess.run(
        [str(venv_tool("kubectl")), "kustomize", str(DEV_ENV)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize _dev-env failed:\n{result.stderr}"
    return result.stdout


def render_base() -> list[dict[str, Any]]:
    """The objects of `kubectl kustomize _dev-env` (fresh copies: tests may not share edits)."""
    return [doc for doc in yaml.safe_load_all(_render()) if doc]


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def dockerfile_instruction(dockerfile: Path, name: str) -> list[str]:
    """The exec-form (JSON array) argument of the last NAME instruction."""
    lines = re.findall(rf"(?m)^{name} (\[.*\])$", dockerfile.read_text())
    assert lines, f"{dockerfile} has no exec-form {name}"
    value = json.loads(lines[-1])
    assert isinstance(value, list)
    return [str(v) for v in value]
