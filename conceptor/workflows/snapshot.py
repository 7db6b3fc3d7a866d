"""Snapshot workflows: save, restore, list, delete, export and import the whole environment.

Each is startable from the Temporal UI with a JSON input (`{"name": "before-demo"}`), from the
CLI (`conceptor snapshot …`) and from the API. Parts run in parallel, one activity each, so the
UI shows which database, bucket or realm is being copied; nothing secret is in the history
(the activities read passwords from the worker's settings and keep realm files on disk).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from conceptor.contracts import PROVISION_WORKFLOW, ProvisionInput, ProvisionResult
    from conceptor.snapshot_contracts import (
        SNAPSHOT_DELETE_WORKFLOW,
        SNAPSHOT_EXPORT_WORKFLOW,
        SNAPSHOT_IMPORT_WORKFLOW,
        SNAPSHOT_LIST_WORKFLOW,
        SNAPSHOT_RESTORE_WORKFLOW,
        SNAPSHOT_SAVE_WORKFLOW,
        SNAPSHOT_SPARE_WORKFLOW,
        BucketPart,
        DatabasePart,
        ExportResult,
        PartRequest,
        RealmPart,
        RestoreCheck,
        RestoreResult,
        SavePlan,
        ServiceRestore,
        SnapshotFileRequest,
        SnapshotList,
        SnapshotManifest,
        SnapshotRequest,
        SpareRequest,
        spare_workflow_id,
    )

T = TypeVar("T")

# A gigabyte is seconds; a dead worker is noticed by the heartbeat, not by this backstop.
PART_LIMIT = timedelta(hours=2)
HEARTBEAT = timedelta(seconds=15)
# Infrastructure hiccups are retried; refusals (non-retryable failures) end the run at once.
PART_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)


async def _activity(name: str, arg: Any, result_type: type[T]) -> T:
    result: T = await workflow.execute_activity(
        name,
        arg,
        start_to_close_timeout=PART_LIMIT,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=PART_RETRY,
        result_type=result_type,
        summary=f"{name} {getattr(arg, 'part', '') or getattr(arg, 'name', '') or ''}".strip(),
    )
    return result


async def _gather_all(calls: list[Any]) -> list[Any]:
    """Every call to its end; then the first failure, so no part is left running unwatched."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
    return list(results)


def _each_part(
    activity: str, name: str, parts: list[str], result_type: type[T]
) -> list[Coroutine[Any, Any, T]]:
    """One activity per part of snapshot `name` (all started together by _gather_all)."""
    return [_activity(activity, PartRequest(name=name, part=p), result_type) for p in parts]


def _cause(error: BaseException) -> str:
    while isinstance(error, ActivityError) and error.cause is not None:
        error = error.cause
    return str(error)


@workflow.defn(name=SNAPSHOT_SAVE_WORKFLOW)
class SnapshotSaveWorkflow:
    @workflow.run
    async def run(self, request: SnapshotRequest) -> SnapshotManifest:
        started = workflow.now()
        plan: SavePlan = await _activity("snapshot_plan_save", request, SavePlan)
        try:
            parts = await _gather_all(
                [
                    *_each_part("snapshot_save_database", plan.name, plan.databases, DatabasePart),
                    *_each_part("snapshot_save_bucket", plan.name, plan.buckets, BucketPart),
                    *_each_part("snapshot_save_realm", plan.name, plan.realms, RealmPart),
                ]
            )
        except Exception as exc:
            # A half-saved snapshot is no snapshot: remove what was copied, then fail.
            await _activity("snapshot_delete", request, int)
            raise ApplicationError(
                f"snapshot {plan.name} not saved: {_cause(exc)}", type="SnapshotSaveFailed"
            ) from exc
        manifest = SnapshotManifest(
            name=plan.name,
            created_at=started,
            git_commit=plan.git_commit,
            environment_digests=plan.environment_digests,
            databases=[p for p in parts if isinstance(p, DatabasePart)],
            buckets=[p for p in parts if isinstance(p, BucketPart)],
            realms=[p for p in parts if isinstance(p, RealmPart)],
            seconds=round((workflow.now() - started).total_seconds(), 3),
        )
        calls: list[Coroutine[Any, Any, Any]] = [
            _activity("snapshot_write_manifest", manifest, SnapshotManifest)
        ]
        if plan.databases:  # once saved (a failed save removes what it copied): the spares
            calls.append(_remake_spares(plan.name, after_save=True))
        written: SnapshotManifest = (await _gather_all(calls))[0]
        return written


async def _remake_spares(name: str, *, after_save: bool) -> None:
    """Start the run that, once this save or restore has ended, drops the databases a restore
    replaced and makes the spares (again), so the next restore finds them ready; started with
    the parts, so the save or restore never waits for it. One such run per snapshot at a time
    (one running already: it will do it)."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await workflow.start_child_workflow(
            SNAPSHOT_SPARE_WORKFLOW,
            SpareRequest(name=name, after=workflow.info().workflow_id),
            id=spare_workflow_id(name, after_save),
            task_queue=workflow.info().task_queue,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )


@workflow.defn(name=SNAPSHOT_RESTORE_WORKFLOW)
class SnapshotRestoreWorkflow:
    @workflow.run
    async def run(self, request: SnapshotRequest) -> RestoreResult:
        started = workflow.now()
        check: RestoreCheck = await _activity("snapshot_check_restore", request, RestoreCheck)
        manifest = check.manifest
        paused = await _activity("drift_watch_pause", True, bool)
        try:
            restored = await _gather_all(
                [
                    *_each_part(
                        "snapshot_restore_database",
                        request.name,
                        [d.database for d in manifest.databases],
                        ServiceRestore,
                    ),
                    *_each_part(
                        "snapshot_restore_bucket",
                        request.name,
                        [b.bucket for b in manifest.buckets],
                        ServiceRestore,
                    ),
                    *_each_part(
                        "snapshot_restore_realm",
                        request.name,
                        [r.realm for r in manifest.realms],
                        ServiceRestore,
                    ),
                    *(
                        [_remake_spares(request.name, after_save=False)]
                        if manifest.databases
                        else []
                    ),
                ]
            )
            restored = [r for r in restored if isinstance(r, ServiceRestore)]
        finally:
            if paused:
                await _activity("drift_watch_pause", False, bool)
        if check.migrate_steps:
            # The snapshot predates migrations on disk: apply them, as provisioning does.
            await workflow.execute_child_workflow(
                PROVISION_WORKFLOW,
                ProvisionInput(
                    steps=check.migrate_steps,
                    reason=f"snapshot {request.name} restored: pending migrations",
                ),
                id=f"{workflow.info().workflow_id}-migrate",
                task_queue=workflow.info().task_queue,
                result_type=ProvisionResult,
            )
        # Without pending migrations the parts checked each database's against the manifest.
        applied: dict[str, list[str]] = {}
        if check.migrate_steps:
            applied = await _activity("snapshot_migrations_applied", request, dict[str, list[str]])
        missing = {
            db: [m for m in names if m not in applied.get(db, [])]
            for db, names in check.pending_migrations.items()
        }
        if any(missing.values()):
            raise ApplicationError(
                f"snapshot {request.name} restored, but migrations are still pending: {missing}",
                type="SnapshotMigrationsPending",
            )
        return RestoreResult(
            name=request.name,
            restored=restored,
            migrations_applied=applied,
            drift_watch_paused=paused,
            seconds=round((workflow.now() - started).total_seconds(), 3),
        )


@workflow.defn(name=SNAPSHOT_LIST_WORKFLOW)
class SnapshotListWorkflow:
    @workflow.run
    async def run(self) -> SnapshotList:
        listed: SnapshotList = await workflow.execute_activity(
            "snapshot_list",
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=PART_RETRY,
            result_type=SnapshotList,
        )
        return listed


@workflow.defn(name=SNAPSHOT_DELETE_WORKFLOW)
class SnapshotDeleteWorkflow:
    @workflow.run
    async def run(self, request: SnapshotRequest) -> int:
        return await _activity("snapshot_delete", request, int)


@workflow.defn(name=SNAPSHOT_EXPORT_WORKFLOW)
class SnapshotExportWorkflow:
    @workflow.run
    async def run(self, request: SnapshotFileRequest) -> ExportResult:
        if request.name is None:
            raise ApplicationError("export needs the snapshot's name", non_retryable=True)
        return await _activity("snapshot_export", request, ExportResult)


@workflow.defn(name=SNAPSHOT_IMPORT_WORKFLOW)
class SnapshotImportWorkflow:
    @workflow.run
    async def run(self, request: SnapshotFileRequest) -> ExportResult:
        return await _activity("snapshot_import", request, ExportResult)


@workflow.defn(name=SNAPSHOT_SPARE_WORKFLOW)
class SnapshotSpareWorkflow:
    """After a save or a restore of snapshot `name`: the databases a restore replaced dropped,
    and the spares made (again) from their copies."""

    @workflow.run
    async def run(self, request: SpareRequest) -> list[str]:
        return await _activity("snapshot_remake_spares", request, list[str])


SNAPSHOT_WORKFLOW_CLASSES = [
    SnapshotSaveWorkflow,
    SnapshotRestoreWorkflow,
    SnapshotListWorkflow,
    SnapshotDeleteWorkflow,
    SnapshotExportWorkflow,
    SnapshotImportWorkflow,
    SnapshotSpareWorkflow,
]
