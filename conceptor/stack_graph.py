"""The provisioning graph of the stack the environment file declares (read by the worker's
`provision_defaults`, and by the CLI and the API to know the steps' names)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conceptor.contracts import ProvisionGraph, build_graph
from conceptor.platform import environment
from conceptor.platform.environment import Environment, Step


def environment_graph(
    env: Environment, *, plans: Callable[[Step], bool] | None = None
) -> ProvisionGraph:
    """The graph `env` implies; `plans(step)` says whether a team's step offers
    desired/live/diff (the worker imports it to know; elsewhere its name is enough)."""
    return build_graph(
        databases=[d.name for d in env.databases],
        realms=[r.name for r in env.realms],
        custom=[(s.name, list(s.after), bool(plans and plans(s))) for s in env.steps],
        services=set(env.services.enabled()),
        seeded=[d.name for d in env.databases if d.seed],
        seeded_buckets=[b.name for b in env.buckets if b.seed is not None],
    )


def current_environment(file: Path | None = None) -> tuple[Environment, Path]:
    """The environment file in use ($CONCEPTOR_ENVIRONMENT_FILE, else the shipped one),
    checked without importing the team's code; refused: EnvironmentFileError."""
    path = file or environment.default_file()
    return environment.check(path, imports=False), path.resolve().parent


# The names by file and its modification time: the API checks every step of a request.
_NAMES: dict[tuple[Path, int], list[str]] = {}


def step_names(file: Path | None = None) -> list[str]:
    """Every step's name, in graph order, for choosing steps (`--step`, the API's `steps`)."""
    path = (file or environment.default_file()).resolve()
    try:
        key = (path, path.stat().st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _NAMES:
        return list(_NAMES[key])
    env, _ = current_environment(path)
    names = environment_graph(env).names()
    if key is not None:
        _NAMES.clear()
        _NAMES[key] = names
    return list(names)
