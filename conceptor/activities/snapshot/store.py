"""Where a snapshot lives: its folder on this machine, its database copies, its object prefix."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from temporalio.exceptions import ApplicationError

from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.snapshot_contracts import SNAPSHOT_BUCKET as SNAPSHOT_BUCKET
from conceptor.snapshot_contracts import (
    SNAPSHOT_CORRUPT,
    SNAPSHOT_NOT_FOUND,
    SNAPSHOT_REFUSED,
    SnapshotManifest,
)

MANIFEST = "manifest.json"
COPY_PREFIX = "conceptor_snapshot_"  # every snapshot's database copy, and nothing else
SPARE_SUFFIX = "_spare"
SAVING = ".saving"  # present while a save runs: a folder holding it is no snapshot (yet)


def refuse(message: str, kind: str = SNAPSHOT_REFUSED) -> ApplicationError:
    """A failure a retry cannot fix: the workflow fails at once, with this message."""
    return ApplicationError(message, type=kind, non_retryable=True)


def root(settings: Settings) -> Path:
    return settings.localdev_dir / "snapshots"


def folder(settings: Settings, name: str) -> Path:
    return root(settings) / name


def realm_file(settings: Settings, name: str, realm: str) -> Path:
    return folder(settings, name) / "realms" / f"{realm}.json"


def copy_name(name: str, database: str) -> str:
    """The snapshot's copy of `database`: within PostgreSQL's 63 bytes whatever the names;
    the copy's comment says what it is (the digest alone would not)."""
    digest = hashlib.sha256(f"{name}\0{database}".encode()).hexdigest()[:20]
    return f"{COPY_PREFIX}{digest}"


def spare_name(copy: str) -> str:
    """The spare of a snapshot's copy: found by this name, it carries no comment (a restore
    renames it to the live database's name, which must not look like a snapshot's copy)."""
    return f"{copy}{SPARE_SUFFIX}"


def object_prefix(name: str, bucket: str) -> str:
    return f"{name}/{bucket}/"


def read_manifest(settings: Settings, name: str) -> SnapshotManifest:
    """The saved manifest of `name`; refuses a snapshot that does not exist or is unreadable."""
    path = folder(settings, name) / MANIFEST
    if not path.is_file() or (folder(settings, name) / SAVING).exists():
        known = ", ".join(names(settings)) or "none"
        raise refuse(
            f"no snapshot {name!r} in {root(settings)} (snapshots: {known})", SNAPSHOT_NOT_FOUND
        )
    try:
        return SnapshotManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise refuse(f"{path}: not a readable manifest: {exc}", SNAPSHOT_CORRUPT) from None


def write_manifest(settings: Settings, manifest: SnapshotManifest) -> Path:
    """Write the manifest last and atomically: a snapshot exists once its manifest does."""
    target = folder(settings, manifest.name)
    target.mkdir(parents=True, exist_ok=True)
    path = target / MANIFEST
    partial = path.with_suffix(".partial")
    partial.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    os.replace(partial, path)
    (target / SAVING).unlink(missing_ok=True)
    return path


def names(settings: Settings) -> list[str]:
    """The snapshots saved on this machine (complete ones: their manifest written)."""
    base = root(settings)
    if not base.is_dir():
        return []
    return sorted(
        p.name for p in base.iterdir() if (p / MANIFEST).is_file() and not (p / SAVING).exists()
    )


def git_commit() -> str | None:
    """The checkout's commit, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def digest_files(paths: dict[str, Path]) -> dict[str, str]:
    """sha256 of each file, or of each folder's files in name order, by a label."""
    out: dict[str, str] = {}
    for label, path in paths.items():
        h = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.exists():
                h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else b"")
                h.update(f.read_bytes())
        out[label] = h.hexdigest()
    return out


def dump_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
