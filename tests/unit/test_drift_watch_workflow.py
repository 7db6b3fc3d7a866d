"""DriftWatchWorkflow's decisions, with the step activities replaced under their real names.

The diffs here are given, not computed: what is tested is the workflow's reading of them
(drift reported, data loss healed by a ProvisionWorkflow of just the affected chain, repair
only when asked). The real diffs are tested against real servers in tests/integration.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from conceptor.contracts import (
    DRIFT_WATCH_WORKFLOW,
    PROVISION_DEFAULTS,
    REGISTER_DRIFT_WATCH,
    Change,
    Diff,
    DriftReport,
    ProvisionDefaults,
    ProvisionInput,
    ReconcileInput,
    StepResult,
    WaitInput,
)
from conceptor.workflows.drift import DRIFT_WORKFLOWS
from conceptor.workflows.provision import PROVISIONING_WORKFLOWS
from tests.helpers import activity_names, step_name
from tests.shipped import ALL_STEPS, DEFAULT_GRAPH, RECONCILING_STEPS

TEST_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "temporal-test-server"


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    ) as environment:
        yield environment


def unchanged(step: str) -> Diff:
    return Diff(target=step, changes=[Change(kind="thing", name="a", action="unchanged")])


def fakes(
    diffs: dict[str, Diff], calls: list[str], *, repair: bool = False
) -> list[Callable[..., Any]]:
    """Plans return `diffs` (default: all unchanged); applies record themselves."""

    def make(step: str) -> Callable[..., Any]:
        if step.startswith("wait_for_"):

            async def waiting(wait: WaitInput) -> StepResult:
                return StepResult(detail="up")

            return activity.defn(name=step)(waiting)

        async def reconcile(data: ReconcileInput | None = None) -> StepResult:
            planned = data is not None and data.plan
            name = step_name(step, data.target if data is not None else None)
            calls.append(f"{name}:{'plan' if planned else 'apply'}")
            return StepResult.from_diff(diffs.get(name, unchanged(name)), planned=planned)

        return activity.defn(name=step)(reconcile)

    @activity.defn(name=PROVISION_DEFAULTS)
    async def defaults() -> ProvisionDefaults:
        return ProvisionDefaults(step_deadline_seconds=30, drift_repair=repair, graph=DEFAULT_GRAPH)

    @activity.defn(name=REGISTER_DRIFT_WATCH)
    async def register() -> str:
        calls.append(REGISTER_DRIFT_WATCH)
        return "unchanged"

    return [
        defaults,
        register,
        *(make(a) for a in activity_names(ALL_STEPS) if a != "wait_for_redis"),
        make("wait_for_redis"),
    ]


async def check(env: WorkflowEnvironment, acts: list[Callable[..., Any]]) -> DriftReport:
    queue = f"test-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[*PROVISIONING_WORKFLOWS, *DRIFT_WORKFLOWS],
        activities=acts,
    ):
        return await env.client.execute_workflow(
            DRIFT_WATCH_WORKFLOW,
            id=f"drift-watch-run-{uuid.uuid4()}",
            task_queue=queue,
            result_type=DriftReport,
        )


async def test_no_drift_reports_nothing_and_repairs_nothing(env: WorkflowEnvironment) -> None:
    calls: list[str] = []
    report = await check(env, fakes({}, calls))
    assert not report.has_drift and report.unchecked == {}
    assert sorted(calls) == sorted(f"{s}:plan" for s in RECONCILING_STEPS)
    assert report.repair_workflow_id is None


async def test_drift_is_reported_by_name_and_left_alone_without_repair(
    env: WorkflowEnvironment,
) -> None:
    calls: list[str] = []
    drifted = Diff(
        target="buckets",
        changes=[
            Change(kind="bucket", name="media", action="unchanged"),
            Change(kind="bucket-policy", name="thumbnails", action="update", fields=["policy"]),
        ],
    )
    report = await check(env, fakes({"ensure_buckets": drifted}, calls))
    assert [(i.step, i.kind, i.name, i.fields) for i in report.items] == [
        ("ensure_buckets", "bucket-policy", "thumbnails", ["policy"])
    ]
    assert report.data_loss == []
    assert not [c for c in calls if c.endswith(":apply")], "drift must not be repaired unasked"


async def test_drift_is_repaired_when_asked(env: WorkflowEnvironment) -> None:
    calls: list[str] = []
    drifted = Diff(
        target="realm",
        changes=[
            Change(kind="user", name="ada", action="create"),
            Change(kind="client", name="api", action="unchanged"),
        ],
    )
    report = await check(env, fakes({"import_realm": drifted}, calls, repair=True))
    assert report.repaired and report.repair_workflow_id
    assert [c for c in calls if c.endswith(":apply")] == ["import_realm:apply"]


async def test_a_service_back_empty_is_healed_even_without_repair(
    env: WorkflowEnvironment,
) -> None:
    calls: list[str] = []
    wiped = Diff(
        target="database app",
        changes=[
            Change(kind="migration", name="0001_init.sql", action="create"),
            Change(kind="migration", name="0002_media.sql", action="create"),
        ],
    )
    report = await check(env, fakes({"migrate_postgres": wiped}, calls))
    assert report.data_loss == ["postgres"]
    assert report.repaired
    # Only the affected chain runs again (the database's seed data after its migrations);
    # the others are left alone.
    assert [c for c in calls if c.endswith(":apply")] == [
        "migrate_postgres:apply",
        "seed_postgres:apply",
    ]
    assert REGISTER_DRIFT_WATCH in calls
    handle = env.client.get_workflow_handle(report.repair_workflow_id or "")
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [arg] = await env.client.data_converter.decode(
        started.input.payloads, type_hints=[ProvisionInput]
    )
    assert arg.steps == ["migrate_postgres", "seed_postgres", "wait_for_postgres"]
    assert "data loss in postgres" in (arg.reason or "")
