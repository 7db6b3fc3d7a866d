"""ProvisionWorkflow's orchestration, with its activities replaced under their real names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from conceptor.client.provisioning import provision_status, start_provision
from conceptor.contracts import (
    REGISTER_DRIFT_WATCH,
    ProvisionDefaults,
    ReconcileInput,
    StepResult,
    WaitInput,
)
from conceptor.workflows.provision import (
    PROVISIONING_WORKFLOWS,
    ProvisionWorkflow,
    attempts_within,
)
from tests.helpers import activity_names, step_name
from tests.shipped import ALL_STEPS, DEFAULT_GRAPH, RECONCILING_STEPS

TEST_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "temporal-test-server"
Behaviour = Callable[[], Any]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    ) as environment:
        yield environment


def fake_activities(
    behaviours: dict[str, Behaviour], calls: list[str], deadline: float = 30.0
) -> list[Callable[..., Any]]:
    """One activity per activity name (told its step by the target); a behaviour may
    raise, or return a StepResult."""

    async def run_step(step: str, *args: Any) -> StepResult:
        calls.append(step)
        behaviour = behaviours.get(step)
        if behaviour is not None:
            value = behaviour()
            if asyncio.iscoroutine(value):
                value = await value
            if isinstance(value, StepResult):
                return value
        if step.startswith("wait_for_"):
            assert isinstance(args[0], WaitInput)
            assert args[0].deadline_seconds == deadline
            return StepResult(attempts=2, detail=f"{step} ok")
        return StepResult(
            outcome="updated",
            counts={"created": 1, "updated": 0, "unchanged": 1},
            changed=[f"+{step}-1"],
        )

    def make(name: str) -> Callable[..., Any]:
        if name.startswith("wait_for_"):

            async def waiting(wait: WaitInput) -> StepResult:
                return await run_step(name, wait)

            return activity.defn(name=name)(waiting)

        async def plain(data: ReconcileInput | None = None) -> StepResult:
            step = step_name(name, data.target if data is not None else None)
            # A step of a declared object is told its target; a plan or a saved one, more.
            if data is not None and (data.plan or data.expected is not None):
                calls.append(f"{step}:{'plan' if data.plan else 'expected'}")
            return await run_step(step)

        return activity.defn(name=name)(plain)

    @activity.defn(name="provision_defaults")
    async def defaults() -> ProvisionDefaults:
        return ProvisionDefaults(step_deadline_seconds=deadline, graph=DEFAULT_GRAPH)

    @activity.defn(name=REGISTER_DRIFT_WATCH)
    async def register_drift_watch() -> str:
        calls.append(REGISTER_DRIFT_WATCH)
        return "created"

    return [defaults, register_drift_watch, *(make(a) for a in activity_names(ALL_STEPS))]


async def _run(
    env: WorkflowEnvironment, acts: list[Callable[..., Any]], **start: Any
) -> tuple[Any, str, str]:
    queue = f"test-{uuid.uuid4()}"
    workflow_id = f"provision-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=queue, workflows=PROVISIONING_WORKFLOWS, activities=acts
    ):
        handle = await start_provision(
            env.client, workflow_id=workflow_id, task_queue=queue, **start
        )
        try:
            return await handle.result(), workflow_id, queue
        except WorkflowFailureError as exc:
            status = await provision_status(env.client, workflow_id=workflow_id)
            return exc, workflow_id, status.model_dump_json()


async def test_provision_runs_every_step_and_reports_outcomes(env: WorkflowEnvironment) -> None:
    """Every step runs; waits say unchanged with their attempts, the rest what changed."""
    calls: list[str] = []
    result, _, _ = await _run(env, fake_activities({}, calls))
    assert sorted(c for c in calls if c != REGISTER_DRIFT_WATCH) == sorted(ALL_STEPS)
    assert list(result.steps) == list(ALL_STEPS)
    assert result.outcomes == {
        "wait_for_postgres": "unchanged",
        "migrate_postgres": "updated",
        "seed_postgres": "updated",
        "wait_for_redis": "unchanged",
        "wait_for_minio": "unchanged",
        "ensure_buckets": "updated",
        "seed_bucket:media": "updated",
        "seed_bucket:thumbnails": "updated",
        "wait_for_keycloak": "unchanged",
        "import_realm": "updated",
    }
    assert result.steps["migrate_postgres"].counts == {"created": 1, "updated": 0, "unchanged": 1}
    assert result.steps["wait_for_redis"].attempts == 2


async def test_provision_runs_the_four_chains_concurrently(env: WorkflowEnvironment) -> None:
    """Each wait step only returns once all four have started: sequential chains would hang."""
    started = asyncio.Event()
    waiting: set[str] = set()

    def barrier(step: str) -> Behaviour:
        async def wait() -> None:
            waiting.add(step)
            if len(waiting) == 4:
                started.set()
            await asyncio.wait_for(started.wait(), timeout=10)

        return wait

    waits = [s for s in ALL_STEPS if s.startswith("wait_for_")]
    calls: list[str] = []
    result, _, _ = await _run(env, fake_activities({s: barrier(s) for s in waits}, calls))
    assert waiting == set(waits)
    assert set(result.steps) == set(ALL_STEPS)
    # Within a chain the order holds: the wait before its follower.
    assert calls.index("wait_for_postgres") < calls.index("migrate_postgres")
    assert calls.index("wait_for_keycloak") < calls.index("import_realm")


async def test_provision_fails_with_the_step_message(env: WorkflowEnvironment) -> None:
    """A non-retryable step failure fails the run with its message; other chains still finish."""

    def failing() -> None:
        msg = 'migration 0002_x.sql failed at line 3: 42601 syntax error at or near "SELEC"'
        raise ApplicationError(msg, type="MigrationFailed", non_retryable=True)

    calls: list[str] = []
    exc, _, status_json = await _run(env, fake_activities({"migrate_postgres": failing}, calls))
    assert isinstance(exc, WorkflowFailureError)
    assert isinstance(exc.cause, ApplicationError)
    assert exc.cause.message == (
        "provisioning failed: migrate_postgres: migration 0002_x.sql failed at line 3: 42601 "
        'syntax error at or near "SELEC"'
    )
    assert calls.count("migrate_postgres") == 1  # non-retryable: not retried
    assert "import_realm" in calls and "ensure_buckets" in calls
    assert '"state":"failed"' in status_json


async def test_provision_skips_the_rest_of_a_failed_chain(env: WorkflowEnvironment) -> None:
    """When a wait fails, its chain's later step is skipped and says why."""

    def unreachable() -> None:
        msg = "keycloak at 127.0.0.1:1 was not ready within the 30s deadline (5 attempts)"
        raise ApplicationError(msg, type="ServiceUnreachable", non_retryable=True)

    calls: list[str] = []
    acts = fake_activities({"wait_for_keycloak": unreachable}, calls)
    queue, workflow_id = f"test-{uuid.uuid4()}", f"provision-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=queue, workflows=PROVISIONING_WORKFLOWS, activities=acts
    ):
        handle = await start_provision(env.client, workflow_id=workflow_id, task_queue=queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await handle.query(ProvisionWorkflow.progress)
    states = {p.step: (p.state, p.error) for p in progress.steps}
    assert states["wait_for_keycloak"] == (
        "failed",
        "keycloak at 127.0.0.1:1 was not ready within the 30s deadline (5 attempts)",
    )
    assert states["import_realm"] == ("skipped", "not run: wait_for_keycloak failed")
    assert "import_realm" not in calls
    assert progress.finished is True


async def test_provision_runs_only_selected_steps(env: WorkflowEnvironment) -> None:
    """Optional input selects steps; the others are skipped."""
    calls: list[str] = []
    result, _, _ = await _run(
        env, fake_activities({}, calls), steps=["wait_for_redis", "ensure_buckets"]
    )
    assert sorted(c for c in calls if c != REGISTER_DRIFT_WATCH) == [
        "ensure_buckets",
        "wait_for_redis",
    ]
    assert list(result.steps) == ["wait_for_redis", "ensure_buckets"]


async def test_provision_retries_a_transient_failure(env: WorkflowEnvironment) -> None:
    """A retryable error is retried; the step then completes with the later attempt's result."""
    attempts: list[int] = []

    def flaky() -> StepResult | None:
        attempts.append(activity.info().attempt)
        if activity.info().attempt < 3:
            msg = "connection reset"
            raise RuntimeError(msg)
        return StepResult(outcome="unchanged", attempts=activity.info().attempt)

    calls: list[str] = []
    result, _, _ = await _run(env, fake_activities({"ensure_buckets": flaky}, calls))
    assert attempts == [1, 2, 3]
    assert result.steps["ensure_buckets"].attempts == 3


async def test_provision_step_deadline_is_a_clear_failure(env: WorkflowEnvironment) -> None:
    """A step that does not finish within its deadline fails the run, naming step and deadline."""

    async def hang() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.2)

    calls: list[str] = []
    exc, _, _ = await _run(
        env,
        fake_activities({"ensure_buckets": hang}, calls, deadline=1.0),
        step_deadline_seconds=1.0,
    )
    assert isinstance(exc, WorkflowFailureError)
    assert isinstance(exc.cause, ApplicationError)
    assert exc.cause.message.startswith(
        "provisioning failed: ensure_buckets: ensure_buckets did not finish within its 1s deadline"
    )


async def test_import_realm_outlives_the_deadline_while_it_heartbeats(
    env: WorkflowEnvironment,
) -> None:
    """A realm import that keeps heartbeating is not cut by the step deadline (its size alone
    must never fail it): 3 s of work under a 1 s deadline completes."""

    async def long_import() -> StepResult:
        for _ in range(15):
            activity.heartbeat({"phase": "reading the live realm"})
            await asyncio.sleep(0.2)
        return StepResult(outcome="created", counts={"created": 50_001})

    calls: list[str] = []
    result, _, _ = await _run(
        env,
        fake_activities({"import_realm": long_import}, calls, deadline=1.0),
        step_deadline_seconds=1.0,
    )
    assert result.steps["import_realm"].outcome == "created"
    assert calls.count("import_realm") == 1


async def test_import_realm_without_heartbeats_fails_naming_it(env: WorkflowEnvironment) -> None:
    """A realm import that stops heartbeating (its worker is gone) fails once its retries,
    as many as fit in the deadline, are spent."""

    async def silent() -> StepResult:
        await asyncio.sleep(6)  # longer than the 5 s heartbeat timeout, without a beat
        return StepResult(outcome="unchanged")

    calls: list[str] = []
    exc, _, _ = await _run(
        env,
        fake_activities({"import_realm": silent}, calls, deadline=0.1),
        step_deadline_seconds=0.1,
    )
    assert isinstance(exc, WorkflowFailureError)
    assert isinstance(exc.cause, ApplicationError)
    assert exc.cause.message == (
        "provisioning failed: import_realm: import_realm stopped reporting progress "
        "(no heartbeat for 5s: its worker died)"
    )
    assert calls.count("import_realm") == 1  # one attempt fits in a 0.1 s deadline


def test_attempts_within_match_the_retries_a_deadline_allows() -> None:
    """Waits of 0.5, 1, 2, 4, then 5 s: as many attempts as a deadline-bound step makes."""
    assert [attempts_within(s) for s in (0.1, 0.5, 1.0, 3.5, 7.5, 12.5, 180.0)] == [
        1, 2, 2, 4, 5, 6, 39,
    ]  # fmt: skip


async def test_provision_current_details_table(env: WorkflowEnvironment) -> None:
    """The UI's "current details" is a Markdown table with a row per step and its outcome."""
    calls: list[str] = []
    queue, workflow_id = f"test-{uuid.uuid4()}", f"provision-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=PROVISIONING_WORKFLOWS,
        activities=fake_activities({}, calls),
    ):
        handle = await start_provision(env.client, workflow_id=workflow_id, task_queue=queue)
        await handle.result()
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    lines = metadata.current_details.splitlines()
    assert lines[0] == "| step | state | attempts | duration | result |"
    assert len(lines) == 2 + len(ALL_STEPS)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert set(rows) == set(ALL_STEPS)
    assert rows["wait_for_redis"].startswith("| wait_for_redis | completed | 2 | ")
    assert rows["migrate_postgres"].endswith(" | updated (created 1, unchanged 1) |")


async def test_provision_current_details_list_warnings(env: WorkflowEnvironment) -> None:
    """A step's warnings appear under the table, one line per cause, named by step."""
    calls: list[str] = []
    warned = StepResult(outcome="created", warnings=["a.b (2 users: x, y): dropped | kept"])
    queue, workflow_id = f"test-{uuid.uuid4()}", f"provision-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=PROVISIONING_WORKFLOWS,
        activities=fake_activities({"import_realm": lambda: warned}, calls),
    ):
        handle = await start_provision(env.client, workflow_id=workflow_id, task_queue=queue)
        result = await handle.result()
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    lines = metadata.current_details.splitlines()
    at = lines.index("**Warnings** (accepted; worth knowing)")
    assert lines[at + 2 :] == ["- `import_realm`: a.b (2 users: x, y): dropped \\| kept"]
    assert result.steps["import_realm"].warnings == warned.warnings


async def test_plan_tells_reconciling_steps_to_plan_and_registers_nothing(
    env: WorkflowEnvironment,
) -> None:
    """A plan passes ReconcileInput(plan=True) to each reconciling step; no drift watch."""
    calls: list[str] = []
    result, _, _ = await _run(env, fake_activities({}, calls), plan=True)
    assert not isinstance(result, Exception), result
    assert sorted(c for c in calls if c.endswith(":plan")) == sorted(
        f"{s}:plan" for s in RECONCILING_STEPS
    )
    assert REGISTER_DRIFT_WATCH not in calls


async def test_apply_registers_the_drift_watch_after_every_step(env: WorkflowEnvironment) -> None:
    calls: list[str] = []
    result, _, _ = await _run(env, fake_activities({}, calls))
    assert not isinstance(result, Exception), result
    assert calls[-1] == REGISTER_DRIFT_WATCH
    assert not [c for c in calls if c.endswith((":plan", ":expected"))], (
        "a plain apply passes no plan and no expectations"
    )
