"""Plans and drift for the CLI and the API: what provisioning would change, and what drifted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from conceptor.client.provisioning import start_provision
from conceptor.contracts import (
    CORE_QUEUE,
    DRIFT_WATCH_SCHEDULE_ID,
    ChangeAction,
    DriftItem,
    DriftReport,
    PlanDigests,
    ProvisionResult,
)
from conceptor.stack_graph import current_environment, environment_graph


class PlanRow(BaseModel):
    """One object the plan would change (or reports as drift it never touches)."""

    step: str
    kind: str
    name: str
    action: ChangeAction
    fields: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    """A plan: the changes, and the digests of the states it saw (to apply it exactly later)."""

    workflow_id: str
    run_id: str | None
    created_at: datetime | None
    has_changes: bool
    changes: list[PlanRow]
    digests: dict[str, PlanDigests]
    unchanged: int
    # Changes the steps' bounded results did not list, and each step's full diff (by ref).
    left_out: int = 0
    refs: dict[str, str] = Field(default_factory=dict)
    # Per step: what it would accept but a person should know (one line per cause).
    warnings: dict[str, list[str]] = Field(default_factory=dict)


class PlanFailedError(RuntimeError):
    """The plan could not be computed (a service down, a file refused): the reason."""


def plan_from_result(
    result: ProvisionResult, *, workflow_id: str, run_id: str | None, created_at: datetime | None
) -> Plan:
    rows: list[PlanRow] = []
    digests: dict[str, PlanDigests] = {}
    refs: dict[str, str] = {}
    unchanged = left_out = 0
    has_changes = False
    warnings: dict[str, list[str]] = {}
    for step, step_result in result.steps.items():
        if step_result.warnings:
            warnings[step] = list(step_result.warnings)
        diff = step_result.diff
        if diff is None:
            continue
        digests[step] = PlanDigests(
            desired_digest=diff.desired_digest, live_digest=diff.live_digest
        )
        if diff.ref:
            refs[step] = diff.ref
        unchanged += diff.counts()["unchanged"]
        left_out += sum(n for action, n in diff.left_out.items() if action != "unchanged")
        has_changes = has_changes or not diff.is_empty
        rows.extend(
            PlanRow(step=step, kind=c.kind, name=c.name, action=c.action, fields=c.fields)
            for c in diff.changes
            if c.action != "unchanged"
        )
    return Plan(
        workflow_id=workflow_id,
        run_id=run_id,
        created_at=created_at,
        has_changes=has_changes,
        changes=rows,
        digests=digests,
        unchanged=unchanged,
        left_out=left_out,
        refs=refs,
        warnings=warnings,
    )


async def make_plan(
    client: Client,
    *,
    steps: list[str] | None = None,
    task_queue: str = CORE_QUEUE,
    workflow_id: str | None = None,
) -> Plan:
    """Run ProvisionPlanWorkflow (or attach to the one running) and read its plan."""
    handle = await start_provision(
        client, steps=steps, plan=True, task_queue=task_queue, workflow_id=workflow_id
    )
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        cause: Any = exc.cause
        raise PlanFailedError(str(getattr(cause, "message", None) or cause or exc)) from None
    desc = await handle.describe()
    return plan_from_result(
        result, workflow_id=handle.id, run_id=desc.run_id, created_at=desc.start_time
    )


def apply_selection(plan: Plan) -> tuple[list[str], dict[str, PlanDigests]]:
    """The steps a saved plan covers (with the steps they wait for, by the environment
    file's graph) and the digests each must match."""
    graph = environment_graph(current_environment()[0])
    steps = [s for s in graph.reconciling() if s in plan.digests]
    if not steps:
        msg = "the plan holds no reconciling step (migrate_postgres, ensure_buckets, import_realm)"
        raise ValueError(msg)
    # A team's step that plans is reconciling only once its module is imported (the worker
    # does): a plan's digests name it anyway.
    steps += [s for s in plan.digests if s not in steps and graph.get(s) is not None]
    selected = sorted(graph.with_dependencies(steps))
    return selected, {s: plan.digests[s] for s in steps}


class DriftStatus(BaseModel):
    """The drift watch: on or off, the latest check, and since when each object has drifted."""

    watching: bool
    interval_seconds: float | None = None
    latest: DriftReport | None = None
    latest_workflow_id: str | None = None
    since: dict[str, datetime] = Field(default_factory=dict)  # item label -> first seen


async def drift_status(
    client: Client, *, schedule_id: str = DRIFT_WATCH_SCHEDULE_ID
) -> DriftStatus:
    """Read the schedule and the results of its recent runs (no new check is started)."""
    handle = client.get_schedule_handle(schedule_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return DriftStatus(watching=False)
        raise
    intervals = desc.schedule.spec.intervals
    status = DriftStatus(
        watching=not desc.schedule.state.paused,
        interval_seconds=intervals[0].every.total_seconds() if intervals else None,
    )
    reports: list[tuple[str, DriftReport]] = []
    for action in sorted(desc.info.recent_actions, key=lambda a: a.started_at, reverse=True):
        wf = getattr(action.action, "workflow_id", None)
        if wf is None:
            continue
        run = client.get_workflow_handle(
            wf,
            run_id=getattr(action.action, "first_execution_run_id", None),
            result_type=DriftReport,
        )
        try:
            reports.append((wf, await run.result(rpc_timeout=None)))
        except (WorkflowFailureError, RPCError):
            continue  # still running, failed or gone: the next one tells
        if len(reports) >= 10:
            break
    if not reports:
        return status
    status.latest_workflow_id, status.latest = reports[0]
    # An object's drift started at the oldest check of the unbroken run of checks that saw it.
    for item in status.latest.items:
        first = status.latest.checked_at
        for _, report in reports[1:]:
            if not any(_same(item, other) for other in report.items):
                break
            first = report.checked_at
        status.since[item.label] = first
    return status


def _same(a: DriftItem, b: DriftItem) -> bool:
    return (a.step, a.kind, a.name, a.action) == (b.step, b.kind, b.name, b.action)
