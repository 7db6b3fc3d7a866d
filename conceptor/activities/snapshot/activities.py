"""The snapshot activities: each saves or restores one part, or handles a whole snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from conceptor.activities.declared import load_declared
from conceptor.activities.postgres import applied_migrations
from conceptor.activities.snapshot import archive, databases, objects, realms, store
from conceptor.platform.settings import Settings
from conceptor.platform.temporal import connect
from conceptor.snapshot_contracts import (
    SNAPSHOT_NEWER_SCHEMA,
    SNAPSHOT_NOT_FOUND,
    SNAPSHOT_REFUSED,
    BucketPart,
    DatabasePart,
    ExportResult,
    PartRequest,
    RealmPart,
    RestoreCheck,
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
_BEAT_SECONDS = 5.0
_WAIT_SECONDS = 600.0  # a restore or a spare's copy of a gigabyte takes seconds


async def beating(work: Coroutine[Any, Any, T]) -> T:
    """`work`, with a heartbeat every few seconds while it runs: a copy of a gigabyte is one
    server call, and a worker that died must still be noticed within the heartbeat timeout."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=_BEAT_SECONDS)
        if done:
            return task.result()
        activity.heartbeat("working")


P = TypeVar("P", DatabasePart, BucketPart, RealmPart)


async def _timed_part(work: Coroutine[Any, Any, P]) -> P:
    """A saved part, with how long it took (the manifest shows where a save's time went)."""
    started = time.monotonic()
    part = await beating(work)
    return part.model_copy(update={"seconds": round(time.monotonic() - started, 3)})


def _part_of(kind: str, items: list[Any], key: Callable[[Any], str], request: PartRequest) -> Any:
    for item in items:
        if key(item) == request.part:
            return item
    raise store.refuse(f"snapshot {request.name} holds no {kind} {request.part!r}")


class SnapshotActivities:
    """Bound to the worker's settings: passwords and the snapshot folder never leave them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # ----- save -------------------------------------------------------------------------

    @activity.defn(name="snapshot_plan_save")
    async def plan_save(self, request: SnapshotRequest) -> SavePlan:
        """What the environment declares now; refuses a name that is taken."""
        if request.name in store.names(self.settings):
            raise store.refuse(
                f"snapshot {request.name!r} exists: delete it first "
                f"(`conceptor snapshot delete {request.name}`) or choose another name"
            )
        env, file = load_declared(SNAPSHOT_REFUSED)
        base = file.resolve().parent
        files: dict[str, Path] = {"environment.yaml": file}
        for realm in env.realms:
            files[f"realms.{realm.name}"] = base / realm.file
        declared = databases.declared_databases(self.settings)
        for db in declared:
            for i, folder in enumerate(db.activities.folders or []):
                files[f"databases.{db.declared}.migrations[{i}]"] = folder
        target = store.folder(self.settings, request.name)
        shutil.rmtree(target, ignore_errors=True)  # a failed save's leftovers
        target.mkdir(parents=True)
        (target / store.SAVING).touch()
        return SavePlan(
            name=request.name,
            databases=[d.declared for d in declared],
            buckets=objects.declared_buckets(self.settings),
            realms=realms.declared_realms(self.settings),
            git_commit=store.git_commit(),
            environment_digests=store.digest_files(files),
        )

    @activity.defn(name="snapshot_save_database")
    async def save_database(self, request: PartRequest) -> DatabasePart:
        return await _timed_part(databases.save(self.settings, request.name, request.part))

    @activity.defn(name="snapshot_save_bucket")
    async def save_bucket(self, request: PartRequest) -> BucketPart:
        return await _timed_part(objects.save(self.settings, request.name, request.part))

    @activity.defn(name="snapshot_save_realm")
    async def save_realm(self, request: PartRequest) -> RealmPart:
        return await _timed_part(realms.save(self.settings, request.name, request.part))

    @activity.defn(name="snapshot_write_manifest")
    async def write_manifest(self, manifest: SnapshotManifest) -> SnapshotManifest:
        store.write_manifest(self.settings, manifest)
        await objects.publish_manifest(self.settings, manifest)
        return manifest

    # ----- restore ----------------------------------------------------------------------

    @activity.defn(name="snapshot_check_restore")
    async def check_restore(self, request: SnapshotRequest) -> RestoreCheck:
        """Before any write: the snapshot is whole, and its migrations are the checkout's or
        older (a snapshot with migrations the checkout lacks is refused, naming them)."""
        manifest = store.read_manifest(self.settings, request.name)
        on_disk = {d.declared: d for d in databases.declared_databases(self.settings)}
        undeclared = [d.database for d in manifest.databases if d.database not in on_disk]
        if undeclared:
            raise store.refuse(
                f"snapshot {request.name} holds database(s) {', '.join(undeclared)} that the "
                "environment file no longer declares: declare them, or restore another snapshot"
            )
        newer: list[str] = []
        pending: dict[str, list[str]] = {}
        steps: list[str] = []
        for part in manifest.databases:
            disk = on_disk[part.database].migrations_on_disk
            unknown = [m for m in part.migrations if m not in disk]
            if unknown:
                newer.append(f"{part.database}: {', '.join(unknown)}")
            later = [m for m in disk if m not in part.migrations]
            if later:
                pending[part.database] = later
                first = next(iter(on_disk)) == part.database
                steps.append("migrate_postgres" if first else f"migrate_postgres:{part.database}")
        if newer:
            raise store.refuse(
                f"snapshot {request.name} was saved with migrations this checkout does not have "
                f"({'; '.join(newer)}): check out the commit it names "
                f"({manifest.git_commit or 'unknown'}) or a later one, then restore",
                SNAPSHOT_NEWER_SCHEMA,
            )
        for bucket in manifest.buckets:
            await objects.check_saved(self.settings, request.name, bucket)
        for realm in manifest.realms:
            realms.check_saved(self.settings, request.name, realm)
        return RestoreCheck(manifest=manifest, pending_migrations=pending, migrate_steps=steps)

    @activity.defn(name="snapshot_restore_database")
    async def restore_database(self, request: PartRequest) -> ServiceRestore:
        manifest = store.read_manifest(self.settings, request.name)
        part = _part_of("database", manifest.databases, lambda d: d.database, request)
        return await self._timed(
            f"postgres:{request.part}",
            lambda: databases.restore(
                self.settings, part, lambda: self._ended(spare_workflow_id(request.name, True))
            ),
        )

    @activity.defn(name="snapshot_restore_bucket")
    async def restore_bucket(self, request: PartRequest) -> ServiceRestore:
        manifest = store.read_manifest(self.settings, request.name)
        part = _part_of("bucket", manifest.buckets, lambda b: b.bucket, request)
        return await self._timed(
            f"minio:{request.part}", lambda: objects.restore(self.settings, request.name, part)
        )

    @activity.defn(name="snapshot_restore_realm")
    async def restore_realm(self, request: PartRequest) -> ServiceRestore:
        manifest = store.read_manifest(self.settings, request.name)
        part = _part_of("realm", manifest.realms, lambda r: r.realm, request)
        return await self._timed(
            f"keycloak:{request.part}", lambda: realms.restore(self.settings, request.name, part)
        )

    async def _timed(
        self, part: str, work: Callable[[], Coroutine[Any, Any, str]]
    ) -> ServiceRestore:
        started = time.monotonic()
        detail = await beating(work())
        return ServiceRestore(
            part=part, detail=detail, seconds=round(time.monotonic() - started, 3)
        )

    @activity.defn(name="snapshot_remake_spares")
    async def remake_spares(self, request: SpareRequest) -> list[str]:
        """After restore `after`: each database it replaced dropped, each spare it renamed in
        made again (nothing to do for a snapshot deleted meanwhile)."""
        if request.after:
            await beating(self._ended(request.after))
        if request.name not in store.names(self.settings):
            return []
        manifest = store.read_manifest(self.settings, request.name)
        return [
            await beating(databases.remake_spare(self.settings, part))
            for part in manifest.databases
        ]

    @activity.defn(name="snapshot_migrations_applied")
    async def migrations_applied(self, request: SnapshotRequest) -> dict[str, list[str]]:
        """Per database, the migrations live now that the snapshot did not hold (read back)."""
        manifest = store.read_manifest(self.settings, request.name)
        out: dict[str, list[str]] = {}
        for part in manifest.databases:
            db = databases.find(self.settings, part.database)
            conn = await db.activities.connect()
            try:
                live = await applied_migrations(conn)
            finally:
                await conn.close()
            later = [m for m in live if m not in part.migrations]
            if later:
                out[part.database] = later
        return out

    @activity.defn(name="drift_watch_pause")
    async def drift_watch_pause(self, pause: bool) -> bool:
        """Pause (True) or resume the drift-watch schedule; True when this call changed it.
        A schedule a person paused stays paused; none yet (never provisioned): nothing to do."""
        client = await connect(self.settings)
        handle = client.get_schedule_handle(self.settings.drift_watch_schedule_id)
        try:
            paused = (await handle.describe()).schedule.state.paused
        except RPCError:
            return False
        if paused == pause:
            return False
        note = "snapshot restore running" if pause else "snapshot restore done"
        await (handle.pause(note=note) if pause else handle.unpause(note=note))
        return True

    # ----- list, delete, export, import -------------------------------------------------

    @activity.defn(name="snapshot_list")
    async def list_snapshots(self) -> SnapshotList:
        return SnapshotList(
            snapshots=sorted(
                (store.read_manifest(self.settings, n) for n in store.names(self.settings)),
                key=lambda m: m.created_at,
            )
        )

    @activity.defn(name="snapshot_delete")
    async def delete(self, request: SnapshotRequest) -> int:
        """Drop the copies, objects and folder of `name` (a partial save's too); bytes freed."""
        target = store.folder(self.settings, request.name)
        if not target.exists():
            known = ", ".join(store.names(self.settings)) or "none"
            raise store.refuse(
                f"no snapshot {request.name!r} in {store.root(self.settings)} (snapshots: {known})",
                SNAPSHOT_NOT_FOUND,
            )
        freed = 0
        declared: list[str] = []
        with contextlib.suppress(Exception):
            manifest = store.read_manifest(self.settings, request.name)
            freed, declared = manifest.bytes(), [d.database for d in manifest.databases]
        with contextlib.suppress(Exception):  # a save that failed has no manifest
            declared += [d.declared for d in databases.declared_databases(self.settings)]
        # A spare being made after a restore would outlive the drop: let it end first.
        for after_save in (True, False):
            await beating(self._ended(spare_workflow_id(request.name, after_save)))
        await databases.drop_all(self.settings, request.name, declared)
        await objects.drop(self.settings, request.name)
        shutil.rmtree(target)
        return freed

    async def _ended(self, workflow_id: str) -> None:
        """Back once workflow `workflow_id` has ended, whatever its outcome."""
        client = await connect(self.settings)
        handle = client.get_workflow_handle(workflow_id)
        try:
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                return
            await asyncio.wait_for(handle.result(), timeout=_WAIT_SECONDS)
        except (RPCError, WorkflowFailureError, TimeoutError):
            return  # none ran, it failed, or it is stuck: go ahead

    @activity.defn(name="snapshot_export")
    async def export(self, request: SnapshotFileRequest) -> ExportResult:
        return await beating(archive.export(self.settings, request))

    @activity.defn(name="snapshot_import")
    async def import_(self, request: SnapshotFileRequest) -> ExportResult:
        return await beating(archive.import_(self.settings, request))


def snapshot_activities(settings: Settings) -> list[Callable[..., Any]]:
    acts = SnapshotActivities(settings)
    return [
        acts.plan_save,
        acts.save_database,
        acts.save_bucket,
        acts.save_realm,
        acts.write_manifest,
        acts.check_restore,
        acts.restore_database,
        acts.restore_bucket,
        acts.restore_realm,
        acts.remake_spares,
        acts.migrations_applied,
        acts.drift_watch_pause,
        acts.list_snapshots,
        acts.delete,
        acts.export,
        acts.import_,
    ]
