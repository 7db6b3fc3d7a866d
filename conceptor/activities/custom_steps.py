"""A team's own provisioning steps (`steps:` of the environment file): load and run them.

The protocol a step implements (README "A custom step"):

- a **plain step** is a callable `run(ctx: StepContext)`, sync or async, returning None or a
  line of detail. It runs on every provisioning run; a plan shows it as "runs every time,
  not planned" and does not call it.
- a **planning step** is an object with `desired(ctx)` and `live(ctx)`, each returning a
  mapping {object name: its state as JSON}, `diff(desired, live)` returning a list of
  `contracts.Change` (`diff_objects` compares two such mappings), and `apply(ctx, changes)`
  writing the `create`/`update`/`delete` changes. The platform digests both states (a saved
  plan is refused when either moved), applies, reads `live` again and verifies that nothing
  is left to do: such a step takes part in plan, drift watch and healing like ours.

Every method may be sync or async. `ctx.settings` holds secrets: a step never returns them.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.declared import load_declared
from conceptor.activities.diffs import step_result
from conceptor.activities.reconcile import change_for, check_plan, digest, verify
from conceptor.activities.waiting import heartbeating
from conceptor.contracts import CUSTOM_STEP, Change, Diff, ReconcileInput, StepResult
from conceptor.platform import environment
from conceptor.platform.environment import Step
from conceptor.platform.settings import REPO_ROOT, Settings

CUSTOM_STEP_INVALID = "CustomStepInvalid"
NOT_PLANNED = "runs every time, not planned"
_PLANNING = ("desired", "live", "diff", "apply")


@dataclass(frozen=True)
class StepContext:
    """What a team's step is given: its name, the worker's settings, the file's folder."""

    name: str
    settings: Settings
    folder: Path


class PlanningStep(Protocol):
    """What a planning step offers, for a team's type checker (each method may be async)."""

    def desired(self, ctx: StepContext) -> Mapping[str, Any]: ...

    def live(self, ctx: StepContext) -> Mapping[str, Any]: ...

    def diff(self, desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[Change]: ...

    def apply(self, ctx: StepContext, changes: list[Change]) -> None: ...


# What a plain step is: called with its context, it may return a line of detail.
PlainStep = Callable[[StepContext], str | Awaitable[str | None] | None]


def diff_objects(kind: str, desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[Change]:
    """Desired vs live objects by name: create the missing, update the differing (the fields
    named), unchanged the equal; a live object the file does not name is left alone."""
    return [change_for(kind, name, want, live.get(name)) for name, want in desired.items()]


def plans(obj: object) -> bool:
    """The object offers desired/live/diff/apply (else it is a plain callable)."""
    return all(callable(getattr(obj, name, None)) for name in _PLANNING)


def load_step(step: Step, folder: Path) -> Any:
    """The object a step's `run:` names, its module found from the repository root or the
    environment file's folder (as for `conceptor worker`)."""
    if step.run is None:
        assert step.entry_point is not None
        from importlib.metadata import entry_points

        found = list(entry_points(group=environment.STEP_ENTRY_POINTS, name=step.entry_point))
        if not found:
            raise _invalid(step.name, f"no package publishes entry point {step.entry_point!r}")
        return found[0].load()
    for where in (str(REPO_ROOT), str(folder)):
        if where not in sys.path:
            sys.path.append(where)
    module, _, attr = step.run.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise _invalid(step.name, f"{step.run} does not import: {exc}") from None
    if not (plans(obj) or callable(obj)):
        raise _invalid(step.name, f"{step.run} is neither callable nor has desired/live/diff")
    return obj


def _invalid(name: str, why: str) -> ApplicationError:
    return ApplicationError(f"step {name}: {why}", type=CUSTOM_STEP_INVALID, non_retryable=True)


async def _call(fn: Any, *args: Any) -> Any:
    value = fn(*args)
    if inspect.isawaitable(value):
        value = await value
    return value


class CustomStepActivities:
    """The activity that runs any of a team's steps by its name in the environment file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _find(self, name: str) -> tuple[Step, Path]:
        env, file = load_declared(CUSTOM_STEP_INVALID)
        step = next((s for s in env.steps if s.name == name), None)
        if step is None:
            raise _invalid(name, f"{file} declares no such step")
        return step, file.resolve().parent

    @activity.defn(name=CUSTOM_STEP)
    async def custom_step(self, data: ReconcileInput) -> StepResult:
        """Run (or plan) the team's step `data.target`."""
        assert data.target is not None, "a custom step is run by its name"
        step, folder = self._find(data.target)
        obj = load_step(step, folder)
        ctx = StepContext(name=step.name, settings=self.settings, folder=folder)
        attempt = activity.info().attempt
        async with heartbeating():
            if not plans(obj):
                if data.plan:
                    return StepResult(planned=True, attempts=attempt, detail=NOT_PLANNED)
                said = await _call(obj, ctx)
                detail = f"{NOT_PLANNED}: {said}" if isinstance(said, str) else NOT_PLANNED
                return StepResult(outcome="updated", attempts=attempt, detail=detail)
            before = await self._diff(obj, ctx)
            if data.plan:
                return await step_result(self.settings, before, planned=True, attempts=attempt)
            check_plan(before, data)
            if not before.is_empty:
                await _call(obj.apply, ctx, before.pending)
                verify(await self._diff(obj, ctx))
            return await step_result(self.settings, before, attempts=attempt)

    @staticmethod
    async def _diff(obj: Any, ctx: StepContext) -> Diff:
        desired = await _call(obj.desired, ctx)
        live = await _call(obj.live, ctx)
        changes = await _call(obj.diff, desired, live)
        return Diff(
            target=f"step {ctx.name}",
            changes=list(changes),
            desired_digest=digest(desired),
            live_digest=digest(live),
        )
