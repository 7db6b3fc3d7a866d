"""What the snapshot workflows take and return: names, manifests and results, no secrets."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

SNAPSHOT_SAVE_WORKFLOW = "SnapshotSaveWorkflow"
SNAPSHOT_RESTORE_WORKFLOW = "SnapshotRestoreWorkflow"
SNAPSHOT_LIST_WORKFLOW = "SnapshotListWorkflow"
SNAPSHOT_DELETE_WORKFLOW = "SnapshotDeleteWorkflow"
SNAPSHOT_EXPORT_WORKFLOW = "SnapshotExportWorkflow"
SNAPSHOT_IMPORT_WORKFLOW = "SnapshotImportWorkflow"
SNAPSHOT_SPARE_WORKFLOW = "SnapshotSpareWorkflow"
SNAPSHOT_WORKFLOWS = (
    SNAPSHOT_SAVE_WORKFLOW,
    SNAPSHOT_RESTORE_WORKFLOW,
    SNAPSHOT_LIST_WORKFLOW,
    SNAPSHOT_DELETE_WORKFLOW,
    SNAPSHOT_EXPORT_WORKFLOW,
    SNAPSHOT_IMPORT_WORKFLOW,
    SNAPSHOT_SPARE_WORKFLOW,
)

# Failure types (non-retryable): a person must act, a retry would fail the same way.
SNAPSHOT_REFUSED = "SnapshotRefused"
SNAPSHOT_NOT_FOUND = "SnapshotNotFound"
SNAPSHOT_NEWER_SCHEMA = "SnapshotNewerSchema"
SNAPSHOT_CORRUPT = "SnapshotCorrupt"

# One bucket holds every snapshot's objects, under `<snapshot>/<bucket>/<key>`, and a copy of
# each manifest at `<snapshot>/manifest.json` (what the API lists). It is the platform's own,
# never a declared one, so plan and drift watch never see it.
SNAPSHOT_BUCKET = "conceptor-snapshots"


def spare_workflow_id(name: str, after_save: bool) -> str:
    """One run making snapshot `name`'s spares at a time after its save, one after restores
    (a restore waits for the first, a delete for both)."""
    return f"snapshot-spare-{name}" + ("-saved" if after_save else "")


def manifest_key(name: str) -> str:
    return f"{name}/manifest.json"


# A name is a folder, part of a database comment and of object keys: keep it plain.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,47}$")
MANIFEST_FORMAT = 1


def check_name(name: str) -> str:
    """`name` when it is a valid snapshot name, else ValueError saying what a name may be."""
    if not NAME_PATTERN.match(name):
        msg = (
            f"snapshot name {name!r} is not valid: 1-48 characters, lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
        raise ValueError(msg)
    return name


class SnapshotRequest(BaseModel):
    """Save, restore or delete the snapshot `name`."""

    name: str

    @field_validator("name")
    @classmethod
    def _valid(cls, name: str) -> str:
        return check_name(name)


class SnapshotFileRequest(BaseModel):
    """Export snapshot `name` to `file`, or import `file` (as `name`, default: its own)."""

    file: str  # an absolute path on the worker's machine (the CLI resolves it)
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _valid(cls, name: str | None) -> str | None:
        return None if name is None else check_name(name)


class DatabasePart(BaseModel):
    """One database as saved: a copy made by PostgreSQL itself (CREATE DATABASE … TEMPLATE)."""

    database: str  # the declared name
    live: str  # the database's name on the server
    copy_name: str  # the snapshot's copy on the same server
    owner: str
    migrations: list[str]  # applied when it was saved, in name order
    bytes: int
    seconds: float = 0.0  # how long its copy took
    # A second copy, ready to be renamed in by the next restore (no data copied then); remade
    # from `copy_name` after a restore uses it. Empty in manifests saved before spares.
    spare: str = ""


class BucketPart(BaseModel):
    """One bucket as saved: server-side copies under the snapshot bucket's `<name>/<bucket>/`."""

    bucket: str
    objects: int
    bytes: int
    seconds: float = 0.0
    # The bucket kept versions: the save recorded each object's (`<name>/_versions/<bucket>.json`).
    versions: bool = False


class RealmPart(BaseModel):
    """One realm as saved: Keycloak's own export, users and their stored credentials included."""

    realm: str
    users: int
    bytes: int
    sha256: str
    seconds: float = 0.0


class SnapshotManifest(BaseModel):
    """What a snapshot holds and where it comes from."""

    format: int = MANIFEST_FORMAT
    name: str
    created_at: datetime
    git_commit: str | None = None
    # sha256 of each environment file (the environment file, realm files, migrations folders)
    environment_digests: dict[str, str] = Field(default_factory=dict)
    databases: list[DatabasePart] = Field(default_factory=list)
    buckets: list[BucketPart] = Field(default_factory=list)
    realms: list[RealmPart] = Field(default_factory=list)
    seconds: float = 0.0  # how long saving took

    def bytes(self) -> int:
        """What the snapshot holds on disk: a database kept with a spare counts twice."""
        return (
            sum(d.bytes * (2 if d.spare else 1) for d in self.databases)
            + sum(b.bytes for b in self.buckets)
            + sum(r.bytes for r in self.realms)
        )


class SavePlan(BaseModel):
    """What a save covers: every declared database, bucket and realm of the environment."""

    name: str
    databases: list[str]
    buckets: list[str]
    realms: list[str]
    git_commit: str | None = None
    environment_digests: dict[str, str] = Field(default_factory=dict)


class PartRequest(BaseModel):
    """One part of one snapshot: a database, a bucket or a realm by its declared name."""

    name: str
    part: str


class SpareRequest(BaseModel):
    """Make snapshot `name`'s spares again once workflow `after` (the restore that uses them)
    has ended: a copy made while it runs would compete with it for the disk."""

    name: str
    after: str = ""


class RestoreCheck(BaseModel):
    """The checks a restore passed before any write, and what it will do after."""

    manifest: SnapshotManifest
    # per database: migrations on disk that the snapshot predates (applied after the restore)
    pending_migrations: dict[str, list[str]] = Field(default_factory=dict)
    # the provisioning steps that apply them
    migrate_steps: list[str] = Field(default_factory=list)


class ServiceRestore(BaseModel):
    """One service's part restored, compared with the live state afterwards."""

    part: str  # "postgres:<db>", "minio:<bucket>", "keycloak:<realm>"
    detail: str
    seconds: float


class RestoreResult(BaseModel):
    """A restore's outcome: each part, then the migrations applied on top."""

    name: str
    restored: list[ServiceRestore] = Field(default_factory=list)
    migrations_applied: dict[str, list[str]] = Field(default_factory=dict)
    drift_watch_paused: bool = False
    seconds: float = 0.0


class SnapshotList(BaseModel):
    """Every snapshot on this machine, oldest first."""

    snapshots: list[SnapshotManifest] = Field(default_factory=list)


class ExportResult(BaseModel):
    """A file written by export, or read by import."""

    name: str
    file: str
    bytes: int
    sha256: str
