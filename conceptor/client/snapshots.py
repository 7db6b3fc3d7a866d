"""Snapshots for the CLI and the API: start a snapshot workflow by name and wait for it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, FailureError

from conceptor.contracts import CORE_QUEUE
from conceptor.snapshot_contracts import (
    SNAPSHOT_DELETE_WORKFLOW,
    SNAPSHOT_EXPORT_WORKFLOW,
    SNAPSHOT_IMPORT_WORKFLOW,
    SNAPSHOT_LIST_WORKFLOW,
    SNAPSHOT_RESTORE_WORKFLOW,
    SNAPSHOT_SAVE_WORKFLOW,
    ExportResult,
    RestoreResult,
    SnapshotFileRequest,
    SnapshotList,
    SnapshotManifest,
    SnapshotRequest,
)

# One restore at a time (two would swap the same databases); saves and the rest by name.
RESTORE_WORKFLOW_ID = "snapshot-restore"


class SnapshotFailed(RuntimeError):
    """The workflow failed; the message is its cause's (a refusal names what to do)."""

    def __init__(self, message: str, kind: str | None) -> None:
        super().__init__(message)
        self.kind = kind


def _cause(exc: WorkflowFailureError) -> SnapshotFailed:
    error: BaseException | None = exc.cause
    while (
        isinstance(error, FailureError)
        and error.cause is not None
        and not (isinstance(error, ApplicationError) and error.non_retryable)
    ):
        error = error.cause
    kind = error.type if isinstance(error, ApplicationError) else None
    return SnapshotFailed(str(error or exc), kind)


async def _run(
    client: Client, workflow: str, arg: Any, result_type: type[Any], workflow_id: str, summary: str
) -> Any:
    args = [] if arg is None else [arg]
    handle = await client.start_workflow(
        workflow,
        args=args,
        id=workflow_id,
        task_queue=CORE_QUEUE,
        result_type=result_type,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=summary,
    )
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        raise _cause(exc) from None


async def save(client: Client, name: str) -> SnapshotManifest:
    manifest: SnapshotManifest = await _run(
        client,
        SNAPSHOT_SAVE_WORKFLOW,
        SnapshotRequest(name=name),
        SnapshotManifest,
        f"snapshot-save-{name}",
        f"Save snapshot {name}",
    )
    return manifest


async def restore(client: Client, name: str) -> RestoreResult:
    result: RestoreResult = await _run(
        client,
        SNAPSHOT_RESTORE_WORKFLOW,
        SnapshotRequest(name=name),
        RestoreResult,
        RESTORE_WORKFLOW_ID,
        f"Restore snapshot {name}",
    )
    if result.name != name:
        raise SnapshotFailed(f"a restore of snapshot {result.name} was running; run again", None)
    return result


async def list_snapshots(client: Client) -> SnapshotList:
    listed: SnapshotList = await _run(
        client,
        SNAPSHOT_LIST_WORKFLOW,
        None,
        SnapshotList,
        f"snapshot-list-{uuid.uuid4().hex[:8]}",
        "List snapshots",
    )
    return listed


async def delete(client: Client, name: str) -> int:
    freed: int = await _run(
        client,
        SNAPSHOT_DELETE_WORKFLOW,
        SnapshotRequest(name=name),
        int,
        f"snapshot-delete-{name}",
        f"Delete snapshot {name}",
    )
    return freed


async def export(client: Client, name: str, file: Path) -> ExportResult:
    result: ExportResult = await _run(
        client,
        SNAPSHOT_EXPORT_WORKFLOW,
        SnapshotFileRequest(name=name, file=str(file.resolve())),
        ExportResult,
        f"snapshot-export-{name}",
        f"Export snapshot {name} to {file.name}",
    )
    return result


async def import_file(client: Client, file: Path, name: str | None) -> ExportResult:
    result: ExportResult = await _run(
        client,
        SNAPSHOT_IMPORT_WORKFLOW,
        SnapshotFileRequest(file=str(file.resolve()), name=name),
        ExportResult,
        f"snapshot-import-{uuid.uuid4().hex[:8]}",
        f"Import snapshot file {file.name}",
    )
    return result
