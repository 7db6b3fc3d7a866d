"""ProvisionWorkflow: the provisioning graph's steps, each as soon as those it waits for are
done, each retried within a deadline;
ResetPostgresWorkflow: drop, re-migrate and re-seed the database, on request only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from conceptor.contracts import (
        PROGRESS_QUERY,
        PROVISION_DEFAULTS,
        PROVISION_PLAN_WORKFLOW,
        PROVISION_WORKFLOW,
        REGISTER_DRIFT_WATCH,
        RESET_POSTGRES,
        RESET_POSTGRES_WORKFLOW,
        SEED_STEP,
        Diff,
        GraphStep,
        PlanDigests,
        ProvisionDefaults,
        ProvisionGraph,
        ProvisionInput,
        ProvisionProgress,
        ProvisionResult,
        ReconcileInput,
        ResetPostgresInput,
        ResetPostgresResult,
        StepProgress,
        StepResult,
        WaitInput,
    )

PROVISION_FAILED = "ProvisionFailed"
STALE_PLAN = "StalePlan"
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
# Steps whose time grows with the size of what they manage (a realm of 50 000 users): an
# attempt has no deadline a size can break. It heartbeats its progress, the heartbeat timeout
# notices a dead worker, and failures are retried as many times as fit in the step deadline.
PROGRESS_STEPS: frozenset[str] = frozenset({"import_realm"})
# A backstop on one attempt of such a step, far beyond what any size takes.
PROGRESS_STEP_LIMIT = timedelta(hours=6)


class StepFailedError(Exception):
    """A step failed; its progress entry holds the message."""


async def run_step(
    step: str,
    deadline: float,
    progress: StepProgress,
    reconcile: ReconcileInput | None = None,
    activity: str | None = None,
) -> StepResult:
    """Execute one step's activity by name (`activity`, default the step's name), recording
    its state, attempts and duration."""
    activity = activity or step
    waits = activity.startswith("wait_for_")
    args: list[object] = []
    if waits:
        args = [WaitInput(deadline_seconds=deadline)]
    elif reconcile is not None:
        args = [reconcile]
    limit = timedelta(seconds=deadline + (WAIT_GRACE_SECONDS if waits else 0.0))
    if activity in PROGRESS_STEPS:
        retry = RetryPolicy(
            initial_interval=STEP_RETRY.initial_interval,
            backoff_coefficient=STEP_RETRY.backoff_coefficient,
            maximum_interval=STEP_RETRY.maximum_interval,
            maximum_attempts=attempts_within(deadline),
        )
        whole: timedelta | None = None  # the attempts are counted instead
        attempt = max(limit, PROGRESS_STEP_LIMIT)
    else:
        retry, whole, attempt = STEP_RETRY, limit, limit
    started = workflow.now()
    progress.state = "running"
    try:
        result = await workflow.execute_activity(
            activity,
            args=args,
            result_type=StepResult,
            schedule_to_close_timeout=whole,
            start_to_close_timeout=attempt,
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=retry,
            summary=step,
        )
    except ActivityError as exc:
        # No `finally`: on eviction the coroutine is closed outside the workflow's event loop,
        # where workflow.now() and set_current_details are not allowed.
        progress.duration_seconds = round((workflow.now() - started).total_seconds(), 3)
        progress.state = "failed"
        progress.attempts = max(progress.attempts, 1)  # the failure does not say how many
        progress.error = describe_failure(step, exc, deadline, long=activity in PROGRESS_STEPS)
        raise StepFailedError(step) from exc
    progress.duration_seconds = round((workflow.now() - started).total_seconds(), 3)
    assert isinstance(result, StepResult)
    progress.state = "completed"
    progress.attempts = result.attempts
    progress.result = result
    return result


def attempts_within(deadline: float) -> int:
    """How many attempts STEP_RETRY starts within `deadline` seconds of waits between them:
    a step without a deadline gives up on a failure as soon as one with it would."""
    attempts, waited = 1, 0.0
    wait = STEP_RETRY.initial_interval.total_seconds()
    top = STEP_RETRY.maximum_interval.total_seconds() if STEP_RETRY.maximum_interval else wait
    while waited + wait <= deadline:
        waited += wait
        attempts += 1
        wait = min(wait * STEP_RETRY.backoff_coefficient, top)
    return attempts


def describe_failure(
    step: str, exc: ActivityError, deadline: float, *, long: bool | None = None
) -> str:
    cause = exc.cause
    if long is None:
        long = step in PROGRESS_STEPS
    if isinstance(cause, TimeoutError) and long:
        if cause.type == TimeoutType.HEARTBEAT:
            beat = HEARTBEAT_TIMEOUT.total_seconds()
            return (
                f"{step} stopped reporting progress (no heartbeat for {beat:g}s: its worker died)"
            )
        hours = PROGRESS_STEP_LIMIT.total_seconds() / 3600
        return f"{step} did not finish within {hours:g} h, although it kept reporting progress"
    if isinstance(cause, TimeoutError):
        last = f"; last failure: {cause.cause}" if cause.cause is not None else ""
        return f"{step} did not finish within its {deadline:g}s deadline{last}"
    if isinstance(cause, ApplicationError):
        return cause.message
    return f"{step} failed: {cause or exc}"


class Provisioner:
    """One provisioning pass over the graph: progress per step, applied or only planned."""

    def __init__(self, plan: bool = False, *, show: bool = True) -> None:
        self.plan = plan
        self.show = show  # False: a pass nobody watches (checking a saved plan first)
        self.reason: str | None = None
        self.graph: ProvisionGraph = ProvisionGraph(steps=[])
        # Filled once the graph is known (the worker reads it from the environment file).
        self.progress: dict[str, StepProgress] = {}
        self.finished = False

    async def defaults(self) -> ProvisionDefaults:
        """The worker's settings and graph, through a local activity (a workflow reads no file)."""
        defaults = await workflow.execute_local_activity(
            PROVISION_DEFAULTS,
            result_type=ProvisionDefaults,
            start_to_close_timeout=timedelta(seconds=10),
        )
        assert isinstance(defaults, ProvisionDefaults)
        return defaults

    async def run(
        self, input: ProvisionInput | None, defaults: ProvisionDefaults | None = None
    ) -> ProvisionResult:
        input = input or ProvisionInput()
        self.plan = self.plan or input.plan
        self.reason = input.reason
        if defaults is None:
            defaults = await self.defaults()
        self.graph = defaults.graph
        names = self.graph.names()
        self.progress = {s: StepProgress(step=s) for s in names}
        unknown = [s for s in input.steps or [] if s not in self.progress]
        if unknown:
            msg = f"unknown step(s) {', '.join(unknown)}; the graph has {', '.join(names)}"
            raise ApplicationError(msg, type=PROVISION_FAILED, non_retryable=True)
        selected: set[str] = set(input.steps) if input.steps else set(names)
        for step in names:
            if step not in selected:
                self.progress[step].state = "skipped"
        deadline = input.step_deadline_seconds
        if deadline is None:
            deadline = defaults.step_deadline_seconds
        started = workflow.now()
        self.publish()
        expected = input.expected or {}
        if expected and not self.plan:
            # Every step's state is checked before any step writes: a stale plan is refused
            # whole, never half applied. (Each step checks again right before writing.)
            await self._refuse_if_stale(input, deadline, expected, defaults)
        done = {name: asyncio.Event() for name in names}
        # The step whose failure holds back each step that did not run (its root cause).
        failed: dict[str, str] = {}
        await asyncio.gather(
            *(
                self._step(step, selected, deadline, expected, done, failed)
                for step in self.graph.steps
            )
        )
        self.finished = True
        self.publish()
        failures = [p for p in self.progress.values() if p.state == "failed"]
        if failures:
            what = "planning" if self.plan else "provisioning"
            msg = f"{what} failed: " + "; ".join(f"{p.step}: {p.error}" for p in failures)
            raise ApplicationError(msg, type=PROVISION_FAILED, non_retryable=True)
        return ProvisionResult(
            steps={p.step: p.result for p in self.progress.values() if p.result is not None},
            duration_seconds=round((workflow.now() - started).total_seconds(), 3),
        )

    async def _refuse_if_stale(
        self,
        input: ProvisionInput,
        deadline: float,
        expected: dict[str, PlanDigests],
        defaults: ProvisionDefaults,
    ) -> None:
        checker = Provisioner(plan=True, show=False)
        await checker.run(
            ProvisionInput(steps=input.steps, step_deadline_seconds=deadline, plan=True),
            defaults,
        )
        stale: list[str] = []
        for step, saw in sorted(expected.items()):
            result = checker.progress[step].result if step in checker.progress else None
            diff = result.diff if result is not None else None
            if diff is None:
                stale.append(f"{step} (not part of this run)")
                continue
            moved = saw.moved(diff)
            if moved:
                stale.append(f"{step} ({' and '.join(moved)} changed)")
        if stale:
            msg = (
                "the plan is stale: " + "; ".join(stale) + ". Nothing was written; make a new "
                "plan (conceptor provision --plan) and apply that one"
            )
            raise ApplicationError(msg, type=STALE_PLAN, non_retryable=True)

    def reconcile_input(
        self, step: GraphStep, expected: dict[str, PlanDigests]
    ) -> ReconcileInput | None:
        """What a step is told: plan, or apply a saved plan, and on what declared object;
        None for a plain apply of a step on what settings name (as the Web UI starts it)."""
        if step.activity.startswith("wait_for_"):
            return None
        if not step.reconciling and step.target is None:
            return None
        saw = expected.get(step.name) if step.reconciling and not self.plan else None
        if not self.plan and saw is None and step.target is None:
            return None
        return ReconcileInput(plan=self.plan, expected=saw, target=step.target)

    async def _step(
        self,
        step: GraphStep,
        selected: set[str],
        deadline: float,
        expected: dict[str, PlanDigests],
        done: dict[str, asyncio.Event],
        failed: dict[str, str],
    ) -> None:
        """Run `step` once every selected step it waits for is done; skip it (naming the
        cause) if one of them failed. A step not selected is not waited for."""
        for dep in step.after:
            if dep in selected and dep in done:
                await done[dep].wait()
        if step.name not in selected:
            done[step.name].set()
            return
        blocked = next((failed[d] for d in step.after if d in failed), None)
        if blocked is not None:
            failed[step.name] = blocked
            self.progress[step.name].state = "skipped"
            self.progress[step.name].error = f"not run: {blocked} failed"
            self.publish()
            done[step.name].set()
            return
        self.publish()
        try:
            await run_step(
                step.name,
                deadline,
                self.progress[step.name],
                self.reconcile_input(step, expected),
                activity=step.activity,
            )
        except StepFailedError:
            failed[step.name] = step.name
        # Not in a `finally`: see run_step (an evicted coroutine is closed off the loop).
        done[step.name].set()
        self.publish()

    def answer(self) -> ProvisionProgress:
        """What the `progress` query returns."""
        return ProvisionProgress(steps=list(self.progress.values()), finished=self.finished)

    def publish(self) -> None:
        """The Markdown the Web UI shows under "Current details" while the run is open."""
        if not self.show:
            return
        header = [f"**Why:** {self.reason}", ""] if self.reason else []
        body = [*header, *self._steps_table(), *self._warnings(), *self._plan()]
        workflow.set_current_details("\n".join(body))

    def _steps_table(self) -> list[str]:
        rows = ["| step | state | attempts | duration | result |", "|---|---|---|---|---|"]
        for p in self.progress.values():
            duration = "" if p.duration_seconds is None else f"{p.duration_seconds:.2f} s"
            if p.result is not None:
                counts = ", ".join(f"{k} {v}" for k, v in p.result.counts.items() if v)
                outcome = f"{p.result.outcome} ({counts})" if counts else p.result.outcome
                if p.result.planned:
                    outcome = f"plan: {outcome}"
            else:
                outcome = p.error or ""
            rows.append(f"| {p.step} | {p.state} | {p.attempts} | {duration} | {_cell(outcome)} |")
        return rows

    def _warnings(self) -> list[str]:
        """What the steps accepted but a person should know, one line per cause."""
        rows = [
            f"- `{p.step}`: {_cell(line)}"
            for p in self.progress.values()
            if p.result is not None
            for line in p.result.warnings
        ]
        return ["", "**Warnings** (accepted; worth knowing)", "", *rows] if rows else []

    def _plan(self) -> list[str]:
        """The changes the steps found (a plan) or applied, one row per object."""
        diffs = [
            (p.step, p.result.diff)
            for p in self.progress.values()
            if p.result is not None and p.result.diff is not None
        ]
        changes = [(step, c) for step, d in diffs for c in d.changes if c.action != "unchanged"]
        if not diffs or (not self.finished and not changes):
            return []
        title = "Plan" if self.plan else "Changes"
        if not changes:
            return ["", f"**{title}:** nothing to do: the live state matches the files."]
        table = change_table((step, c.label, c.action, c.fields) for step, c in changes)
        return ["", f"**{title}**", "", *table, *left_out_notes(diffs)]


def left_out_notes(diffs: Iterable[tuple[str, Diff]]) -> list[str]:
    """Under a change table: per bounded diff, how many changes it does not list, and where
    the full diff is."""
    notes: list[str] = []
    for step, diff in diffs:
        more = sum(n for action, n in diff.left_out.items() if action != "unchanged")
        if more:
            where = f": `conceptor provision --diff {diff.ref}`" if diff.ref else ""
            notes.append(f"{step}: {more} more changes not listed{where}")
    return ["", *notes] if notes else []


def change_table(rows: Iterable[tuple[str, str, str, list[str]]]) -> list[str]:
    """Markdown rows of changed objects (step, object, change, fields), for Current Details."""
    table = ["| step | object | change | fields |", "|---|---|---|---|"]
    for step, label, action, fields in rows:
        table.append(f"| {step} | {_cell(label)} | {action} | {_cell(', '.join(fields))} |")
    return table


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


@workflow.defn(name=PROVISION_WORKFLOW)
class ProvisionWorkflow:
    """Make the environment ready; safe to re-run and to run concurrently.

    With `plan` set it only computes what it would change (no writes); with `expected` set it
    applies exactly a saved plan, refusing any step whose state moved since.
    """

    def __init__(self) -> None:
        self._provisioner = Provisioner()

    @workflow.run
    async def run(self, input: ProvisionInput | None = None) -> ProvisionResult:
        result = await self._provisioner.run(input)
        if not self._provisioner.plan:
            # Watch for drift from now on (an idempotent upsert of the schedule).
            await workflow.execute_activity(
                REGISTER_DRIFT_WATCH,
                result_type=str,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="register the drift watch schedule",
            )
        return result

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> ProvisionProgress:
        """Every step's state, attempts, duration and result so far."""
        return self._provisioner.answer()


@workflow.defn(name=PROVISION_PLAN_WORKFLOW)
class ProvisionPlanWorkflow:
    """What provisioning would change, computed against the live state, without a write.

    Takes no input, so the Web UI's Start Workflow form needs nothing typed.
    """

    def __init__(self) -> None:
        self._provisioner = Provisioner(plan=True)

    @workflow.run
    async def run(self, input: ProvisionInput | None = None) -> ProvisionResult:
        return await self._provisioner.run(input)

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> ProvisionProgress:
        return self._provisioner.answer()


@workflow.defn(name=RESET_POSTGRES_WORKFLOW)
class ResetPostgresWorkflow:
    """Drop every table of a declared database (default: the first), apply its migrations
    again, then its seed data if it declares some; an undeclared database is refused."""

    @workflow.run
    async def run(self, input: ResetPostgresInput | None = None) -> ResetPostgresResult:
        database = input.database if input is not None else None
        defaults = await workflow.execute_local_activity(
            PROVISION_DEFAULTS,
            result_type=ProvisionDefaults,
            start_to_close_timeout=timedelta(seconds=10),
        )
        deadline = defaults.step_deadline_seconds
        # The database's own migration step of the graph; the first one's is the plain step.
        migrate = next(
            (
                s
                for s in defaults.graph.steps
                if s.activity == "migrate_postgres"
                and s.target is not None
                and s.target == database
            ),
            None,
        )
        migrate_name = migrate.name if migrate is not None else "migrate_postgres"
        reconcile = ReconcileInput(target=migrate.target) if migrate is not None else None
        steps = {s: StepProgress(step=s) for s in ("wait_for_postgres", migrate_name)}
        try:
            await run_step("wait_for_postgres", deadline, steps["wait_for_postgres"])
            dropped = await workflow.execute_activity(
                RESET_POSTGRES,
                ResetPostgresInput(database=database),
                result_type=int,
                start_to_close_timeout=timedelta(seconds=deadline),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=STEP_RETRY,
                summary=f"reset_postgres {database or ''}".strip(),
            )
            migrations = await run_step(
                migrate_name, deadline, steps[migrate_name], reconcile, "migrate_postgres"
            )
            # The database's seed data comes back with its tables (reset is how a developer
            # gets back to a known state); older runs replay without this step.
            seed = next(
                (
                    s
                    for s in defaults.graph.steps
                    if s.activity == SEED_STEP and s.after == [migrate_name]
                ),
                None,
            )
            seeded = None
            if seed is not None and workflow.patched("seed-after-reset"):
                steps[seed.name] = StepProgress(step=seed.name)
                seeded = await run_step(
                    seed.name,
                    deadline,
                    steps[seed.name],
                    ReconcileInput(target=seed.target) if seed.target is not None else None,
                    SEED_STEP,
                )
        except StepFailedError as exc:
            msg = f"reset-postgres failed: {exc}: {steps[str(exc)].error}"
            raise ApplicationError(msg, type=PROVISION_FAILED, non_retryable=True) from None
        except ActivityError as exc:
            # The reset itself refused (an undeclared database): its message, as it said it.
            cause = exc.cause
            why = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            kind = cause.type if isinstance(cause, ApplicationError) else PROVISION_FAILED
            msg = f"reset-postgres failed: {why}"
            raise ApplicationError(msg, type=kind, non_retryable=True) from None
        return ResetPostgresResult(
            dropped_tables=dropped, migrations=migrations, database=database, seed=seeded
        )


PROVISIONING_WORKFLOWS = [ProvisionWorkflow, ProvisionPlanWorkflow, ResetPostgresWorkflow]
