"""ProvisionWorkflow: four chains of steps in parallel, each retried within a deadline;
ResetPostgresWorkflow: drop and re-migrate the database, on request only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from conceptor.contracts import (
        ALL_STEPS,
        CHAINS,
        PROGRESS_QUERY,
        PROVISION_DEFAULTS,
        PROVISION_WORKFLOW,
        RESET_POSTGRES,
        RESET_POSTGRES_WORKFLOW,
        ProvisionDefaults,
        ProvisionInput,
        ProvisionProgress,
        ProvisionResult,
        ResetPostgresResult,
        StepName,
        StepProgress,
        StepResult,
        WaitInput,
    )

PROVISION_FAILED = "ProvisionFailed"
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=0,  # bounded by the step deadline, not by a count
)
# A dead worker is noticed this fast; every activity heartbeats at least once a second.
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
# wait_for_* enforce the deadline themselves (with a precise message); this is the backstop.
WAIT_GRACE_SECONDS = 10.0


class StepFailedError(Exception):
    """A step failed; its progress entry holds the message."""


async def run_step(step: StepName, deadline: float, progress: StepProgress) -> StepResult:
    """Execute one step's activity by name, recording its state, attempts and duration."""
    waits = step.startswith("wait_for_")
    limit = timedelta(seconds=deadline + (WAIT_GRACE_SECONDS if waits else 0.0))
    started = workflow.now()
    progress.state = "running"
    try:
        result = await workflow.execute_activity(
            step,
            args=[WaitInput(deadline_seconds=deadline)] if waits else [],
            result_type=StepResult,
            schedule_to_close_timeout=limit,
            start_to_close_timeout=limit,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY,
            summary=step,
        )
    except ActivityError as exc:
        # No `finally`: on eviction the coroutine is closed outside the workflow's event loop,
        # where workflow.now() and set_current_details are not allowed.
        progress.duration_seconds = round((workflow.now() - started).total_seconds(), 3)
        progress.state = "failed"
        progress.attempts = max(progress.attempts, 1)  # the failure does not say how many
        progress.error = describe_failure(step, exc, deadline)
        raise StepFailedError(step) from exc
    progress.duration_seconds = round((workflow.now() - started).total_seconds(), 3)
    assert isinstance(result, StepResult)
    progress.state = "completed"
    progress.attempts = result.attempts
    progress.result = result
    return result


def describe_failure(step: StepName, exc: ActivityError, deadline: float) -> str:
    cause = exc.cause
    if isinstance(cause, TimeoutError):
        last = f"; last failure: {cause.cause}" if cause.cause is not None else ""
        return f"{step} did not finish within its {deadline:g}s deadline{last}"
    if isinstance(cause, ApplicationError):
        return cause.message
    return f"{step} failed: {cause or exc}"


@workflow.defn(name=PROVISION_WORKFLOW)
class ProvisionWorkflow:
    """Make the environment ready; safe to re-run and to run concurrently."""

    def __init__(self) -> None:
        self._progress = {step: StepProgress(step=step) for step in ALL_STEPS}
        self._finished = False

    @workflow.run
    async def run(self, input: ProvisionInput | None = None) -> ProvisionResult:
        selected: set[StepName] = set(input.steps) if input and input.steps else set(ALL_STEPS)
        for step in ALL_STEPS:
            if step not in selected:
                self._progress[step].state = "skipped"
        deadline = input.step_deadline_seconds if input else None
        if deadline is None:
            defaults = await workflow.execute_local_activity(
                PROVISION_DEFAULTS,
                result_type=ProvisionDefaults,
                start_to_close_timeout=timedelta(seconds=10),
            )
            deadline = defaults.step_deadline_seconds
        started = workflow.now()
        self._publish()
        await asyncio.gather(*(self._chain(chain, selected, deadline) for chain in CHAINS))
        self._finished = True
        self._publish()
        failed = [p for p in self._progress.values() if p.state == "failed"]
        if failed:
            msg = "provisioning failed: " + "; ".join(f"{p.step}: {p.error}" for p in failed)
            raise ApplicationError(msg, type=PROVISION_FAILED, non_retryable=True)
        return ProvisionResult(
            steps={p.step: p.result for p in self._progress.values() if p.result is not None},
            duration_seconds=round((workflow.now() - started).total_seconds(), 3),
        )

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> ProvisionProgress:
        """Every step's state, attempts, duration and result so far."""
        return ProvisionProgress(steps=list(self._progress.values()), finished=self._finished)

    async def _chain(
        self, chain: tuple[StepName, ...], selected: set[StepName], deadline: float
    ) -> None:
        for index, step in enumerate(chain):
            if step not in selected:
                continue
            self._publish()
            try:
                await run_step(step, deadline, self._progress[step])
            except StepFailedError:
                for later in chain[index + 1 :]:
                    if later in selected:
                        self._progress[later].state = "skipped"
                        self._progress[later].error = f"not run: {step} failed"
                self._publish()
                return
            self._publish()

    def _publish(self) -> None:
        """The Markdown table the Web UI shows under "Current details" while the run is open."""
        rows = ["| step | state | attempts | duration | result |", "|---|---|---|---|---|"]
        for p in self._progress.values():
            duration = "" if p.duration_seconds is None else f"{p.duration_seconds:.2f} s"
            if p.result is not None:
                counts = ", ".join(f"{k} {v}" for k, v in p.result.counts.items() if v)
                outcome = f"{p.result.outcome} ({counts})" if counts else p.result.outcome
            else:
                outcome = (p.error or "").replace("|", "\\|")
            rows.append(f"| {p.step} | {p.state} | {p.attempts} | {duration} | {outcome} |")
        workflow.set_current_details("\n".join(rows))


@workflow.defn(name=RESET_POSTGRES_WORKFLOW)
class ResetPostgresWorkflow:
    """Drop every table of the application database and apply the migrations again."""

    @workflow.run
    async def run(self) -> ResetPostgresResult:
        defaults = await workflow.execute_local_activity(
            PROVISION_DEFAULTS,
            result_type=ProvisionDefaults,
            start_to_close_timeout=timedelta(seconds=10),
        )
        deadline = defaults.step_deadline_seconds
        steps = {s: StepProgress(step=s) for s in ("wait_for_postgres", "migrate_postgres")}
        try:
            await run_step("wait_for_postgres", deadline, steps["wait_for_postgres"])
            dropped = await workflow.execute_activity(
                RESET_POSTGRES,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=deadline),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=STEP_RETRY,
                summary="reset_postgres",
            )
            migrations = await run_step("migrate_postgres", deadline, steps["migrate_postgres"])
        except StepFailedError as exc:
            msg = f"reset-postgres failed: {exc}: {steps[str(exc)].error}"
            raise ApplicationError(msg, type=PROVISION_FAILED, non_retryable=True) from None
        return ResetPostgresResult(dropped_tables=dropped, migrations=migrations)


PROVISIONING_WORKFLOWS = [ProvisionWorkflow, ResetPostgresWorkflow]
