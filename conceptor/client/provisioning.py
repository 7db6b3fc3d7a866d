"""Provisioning for the CLI and the API: start or attach by workflow name, report status."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from conceptor.contracts import (
    CORE_QUEUE,
    PROGRESS_QUERY,
    PROVISION_PLAN_WORKFLOW,
    PROVISION_PLAN_WORKFLOW_ID,
    PROVISION_WORKFLOW,
    PROVISION_WORKFLOW_ID,
    RESET_POSTGRES_WORKFLOW,
    TARGET_SEPARATOR,
    PlanDigests,
    ProvisionInput,
    ProvisionProgress,
    ProvisionResult,
    ResetPostgresInput,
    ResetPostgresResult,
    StepProgress,
    reset_postgres_workflow_id,
)

_QUERY_TIMEOUT = timedelta(seconds=3)

ProvisionState = Literal["not_started", "running", "completed", "failed"]


class ProvisionStatus(BaseModel):
    """Where provisioning stands: the latest run under the `provision` id."""

    state: ProvisionState
    workflow_id: str
    run_id: str | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None
    steps: list[StepProgress] = []
    result: ProvisionResult | None = None
    error: str | None = None


async def start_provision(
    client: Client,
    *,
    steps: list[str] | None = None,
    step_deadline_seconds: float | None = None,
    plan: bool = False,
    expected: dict[str, PlanDigests] | None = None,
    reason: str | None = None,
    workflow_id: str | None = None,
    task_queue: str = CORE_QUEUE,
) -> WorkflowHandle[Any, ProvisionResult]:
    """Start provisioning, or attach to the run already open under the same id.

    `plan=True` starts ProvisionPlanWorkflow (id `provision-plan`): every diff, no write.
    `expected` applies exactly a saved plan: it never attaches to another open run, since
    that run would not check the plan's digests.
    """
    kind = PROVISION_PLAN_WORKFLOW if plan else PROVISION_WORKFLOW
    verb = "Plan" if plan else "Apply a saved plan" if expected else "Provision"
    options: dict[str, Any] = {
        "id": workflow_id or (PROVISION_PLAN_WORKFLOW_ID if plan else PROVISION_WORKFLOW_ID),
        "task_queue": task_queue,
        "id_conflict_policy": (
            WorkflowIDConflictPolicy.FAIL if expected else WorkflowIDConflictPolicy.USE_EXISTING
        ),
        # A run of every step says so: the graph is the environment file's, read by the worker.
        "static_summary": f"{verb} the environment: "
        + (", ".join(steps) if steps else "every step"),
    }
    plain = not (plan or expected or reason)
    if plain and steps is None and step_deadline_seconds is None:
        return await client.start_workflow(kind, result_type=ProvisionResult, **options)
    arg = ProvisionInput(
        steps=steps,
        step_deadline_seconds=step_deadline_seconds,
        plan=plan,
        expected=expected,
        reason=reason,
    )
    return await client.start_workflow(kind, arg, result_type=ProvisionResult, **options)


async def start_reset_postgres(
    client: Client,
    *,
    database: str | None = None,
    workflow_id: str | None = None,
    task_queue: str = CORE_QUEUE,
) -> WorkflowHandle[Any, ResetPostgresResult]:
    """Start ResetPostgresWorkflow on a declared database (default: the first; drops every
    table, re-applies its migrations), or attach to the one running on it."""
    return await client.start_workflow(
        RESET_POSTGRES_WORKFLOW,
        ResetPostgresInput(database=database),
        result_type=ResetPostgresResult,
        id=workflow_id or reset_postgres_workflow_id(database),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Drop and re-migrate database {database or '(the first declared)'}",
    )


def _state(status: WorkflowExecutionStatus.ValueType | None) -> ProvisionState:
    if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
        return "running"
    if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED:
        return "completed"
    return "failed"


async def provision_status(
    client: Client, *, workflow_id: str = PROVISION_WORKFLOW_ID
) -> ProvisionStatus:
    """State, per-step progress, result or error of the latest provisioning run."""
    handle = client.get_workflow_handle(workflow_id, result_type=ProvisionResult)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return ProvisionStatus(state="not_started", workflow_id=workflow_id)
        raise
    handle = client.get_workflow_handle(
        workflow_id, run_id=desc.run_id, result_type=ProvisionResult
    )
    status = ProvisionStatus(
        state=_state(desc.raw_description.workflow_execution_info.status),
        workflow_id=workflow_id,
        run_id=desc.run_id,
        started_at=desc.start_time,
        closed_at=desc.close_time,
    )
    if status.state != "running":
        try:
            status.result = await handle.result()
        except WorkflowFailureError as exc:
            status.error = str(exc.cause.message if hasattr(exc.cause, "message") else exc.cause)
    status.steps = await _steps(client, handle, desc, status.result)
    return status


async def _steps(
    client: Client, handle: WorkflowHandle[Any, Any], desc: Any, result: ProvisionResult | None
) -> list[StepProgress]:
    try:
        progress = await handle.query(
            PROGRESS_QUERY, result_type=ProvisionProgress, rpc_timeout=_QUERY_TIMEOUT
        )
        steps = list(progress.steps)
    except (RPCError, WorkflowQueryFailedError):
        # No worker answers the query (e.g. none is running): fall back to the last result.
        steps = [
            StepProgress(step=name, state="completed", attempts=r.attempts, result=r)
            for name, r in (result.steps.items() if result else [])
        ]
    # While a step retries, its live attempt count is in the pending activity's heartbeat.
    pending: dict[str, list[Any]] = {}
    for info in desc.raw_description.pending_activities:
        pending.setdefault(info.activity_type.name, []).append(info)
    for step in steps:
        # `migrate_postgres:billing` runs activity migrate_postgres; when several steps run
        # one activity at once, which attempt is whose is unknown: none is shown.
        same = pending.get(step.step.partition(TARGET_SEPARATOR)[0], [])
        pa = same[0] if len(same) == 1 else None
        if pa is None or step.state != "running":
            continue
        attempts = pa.attempt
        if pa.heartbeat_details.payloads:
            details = await client.data_converter.decode(pa.heartbeat_details.payloads)
            if details and isinstance(details[0], dict):
                attempts = max(attempts, int(details[0].get("attempts", 0)))
        step.attempts = attempts
    return steps
