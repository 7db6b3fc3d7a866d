"""A snapshot as one file a teammate can import: a tar of its parts and their checksums.

Inside: `manifest.json`, `databases/<db>.dump` (pg_dump's custom format: a file-level copy
only restores into the same server build), `objects/<bucket>/<key>`, `realms/<realm>.json`,
and last `SHA256SUMS`. An import checks every member against SHA256SUMS (and the manifest
against what the members hold) before it writes anything to PostgreSQL, MinIO or the
snapshot folder; the imported snapshot is then restored like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from conceptor.activities.snapshot import databases, store
from conceptor.activities.snapshot.objects import (
    ensure_snapshot_bucket,
    listing,
    publish_manifest,
)
from conceptor.activities.snapshot.store import SNAPSHOT_BUCKET, object_prefix
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import Settings
from conceptor.snapshot_contracts import (
    SNAPSHOT_CORRUPT,
    DatabasePart,
    ExportResult,
    SnapshotFileRequest,
    SnapshotManifest,
)

SUMS = "SHA256SUMS"
_CHUNK = 1024 * 1024


def pg_tool(name: str) -> Path:
    """pg_dump / pg_restore of the server's major version (the `pgserver` wheel ships them;
    Debian 12's client is a major older and refuses a newer server)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise store.refuse(f"{name} not found: the `pgserver` package is missing (run make setup)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


async def _run(argv: list[str], settings: Settings) -> None:
    env = {
        **os.environ,
        "PGPASSWORD": settings.postgres_superuser_password.get_secret_value(),
    }
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {(err or out).decode()[-500:]}")


def _server(settings: Settings) -> list[str]:
    dsn = urlsplit(settings.postgres_dsn)
    return ["-h", dsn.hostname or "127.0.0.1", "-p", str(dsn.port or 5432), "-U", "postgres"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


async def export(settings: Settings, request: SnapshotFileRequest) -> ExportResult:
    """Write snapshot `request.name` to `request.file` (replaced only once it is complete)."""
    assert request.name is not None
    manifest = store.read_manifest(settings, request.name)
    target = Path(request.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root(settings)) as tmp:
        stage = Path(tmp)
        (stage / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        (stage / "databases").mkdir()
        for part in manifest.databases:
            await _dump(settings, part.copy_name, stage / "databases" / f"{part.database}.dump")
        async with s3_client(settings) as s3:
            for bucket in manifest.buckets:
                prefix = object_prefix(manifest.name, bucket.bucket)
                for key in await listing(s3, SNAPSHOT_BUCKET, prefix):
                    path = stage / "objects" / bucket.bucket / key
                    path.parent.mkdir(parents=True, exist_ok=True)
                    obj = await s3.get_object(Bucket=SNAPSHOT_BUCKET, Key=prefix + key)
                    with path.open("wb") as out:
                        async for chunk in obj["Body"].iter_chunks(_CHUNK):
                            out.write(chunk)
        for realm in manifest.realms:
            path = stage / "realms" / f"{realm.realm}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.realm_file(settings, manifest.name, realm.realm), path)
        members = sorted(p for p in stage.rglob("*") if p.is_file())
        sums = "".join(f"{_sha256(p)}  {p.relative_to(stage).as_posix()}\n" for p in members)
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            for path in members:
                tar.add(path, arcname=path.relative_to(stage).as_posix())
            data = sums.encode()
            info = tarfile.TarInfo(SUMS)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        os.chmod(partial, 0o600)  # realm files hold password hashes
        os.replace(partial, target)
    return ExportResult(
        name=manifest.name, file=str(target), bytes=target.stat().st_size, sha256=_sha256(target)
    )


async def _dump(settings: Settings, copy: str, out: Path) -> None:
    async with databases.superuser(settings) as conn:
        await conn.execute(f'ALTER DATABASE "{copy}" ALLOW_CONNECTIONS true')
        try:
            await _run(
                [str(pg_tool("pg_dump")), *_server(settings), "-Fc", "-f", str(out), "-d", copy],
                settings,
            )
        finally:
            await conn.execute(f'ALTER DATABASE "{copy}" ALLOW_CONNECTIONS false')


def _unpack_checked(file: Path, stage: Path) -> SnapshotManifest:
    """Every member extracted and checked against SHA256SUMS; the manifest they hold."""
    try:
        with tarfile.open(file, "r") as tar:
            tar.extractall(stage, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise store.refuse(f"{file}: not a snapshot file ({exc})", SNAPSHOT_CORRUPT) from None
    sums_file = stage / SUMS
    if not sums_file.is_file():
        raise store.refuse(f"{file}: no {SUMS}: not a complete snapshot file", SNAPSHOT_CORRUPT)
    listed: dict[str, str] = {}
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        digest, _, member = line.partition("  ")
        listed[member] = digest
    present = {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()} - {SUMS}
    if present != set(listed):
        odd = sorted(present ^ set(listed))
        raise store.refuse(f"{file}: members and {SUMS} differ: {odd[:5]}", SNAPSHOT_CORRUPT)
    for member, digest in sorted(listed.items()):
        if _sha256(stage / member) != digest:
            raise store.refuse(f"{file}: {member} fails its checksum", SNAPSHOT_CORRUPT)
    try:
        manifest = SnapshotManifest.model_validate_json((stage / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise store.refuse(f"{file}: manifest.json unreadable: {exc}", SNAPSHOT_CORRUPT) from None
    for bucket in manifest.buckets:
        folder = stage / "objects" / bucket.bucket
        count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
        if count != bucket.objects:
            raise store.refuse(
                f"{file}: bucket {bucket.bucket} has {count} objects, its manifest "
                f"{bucket.objects}",
                SNAPSHOT_CORRUPT,
            )
    return manifest


async def import_(settings: Settings, request: SnapshotFileRequest) -> ExportResult:
    """Check `request.file` whole, then make it a snapshot of this machine."""
    file = Path(request.file)
    if not file.is_file():
        raise store.refuse(f"{file}: no such file")
    store.root(settings).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=store.root(settings)) as tmp:
        stage = Path(tmp)
        manifest = _unpack_checked(file, stage)
        name = request.name or manifest.name
        if name in store.names(settings):
            raise store.refuse(
                f"snapshot {name!r} exists on this machine: delete it, or import under another "
                "name (`conceptor snapshot import FILE --name NEW`)"
            )
        # Checked: from here on, writes.
        target = store.folder(settings, name)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        (target / store.SAVING).touch()
        parts = []
        for part in manifest.databases:
            parts.append(await _restore_copy(settings, stage, name, part))
        async with s3_client(settings) as s3:
            await store_objects(s3, stage, name, manifest)
        for realm in manifest.realms:
            dest = store.realm_file(settings, name, realm.realm)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stage / "realms" / f"{realm.realm}.json", dest)
            os.chmod(dest, 0o600)
        imported = manifest.model_copy(update={"name": name, "databases": parts})
        store.write_manifest(settings, imported)
        await publish_manifest(settings, imported)
    return ExportResult(name=name, file=str(file), bytes=file.stat().st_size, sha256=_sha256(file))


async def store_objects(s3: Any, stage: Path, name: str, manifest: SnapshotManifest) -> None:
    await ensure_snapshot_bucket(s3)
    for bucket in manifest.buckets:
        folder = stage / "objects" / bucket.bucket
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = object_prefix(name, bucket.bucket) + path.relative_to(folder).as_posix()
            with path.open("rb") as body:
                await s3.put_object(Bucket=SNAPSHOT_BUCKET, Key=key, Body=body)


async def _restore_copy(
    settings: Settings, stage: Path, name: str, part: DatabasePart
) -> DatabasePart:
    """The dump as this machine's copy of the database (owned by the same role)."""
    copy = store.copy_name(name, part.database)
    live = part.live
    # A database this checkout does not declare keeps its name (a restore then refuses it).
    with contextlib.suppress(ApplicationError):
        live = databases.find(settings, part.database).live
    async with databases.superuser(settings) as conn:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", part.owner):
            await conn.execute(f'CREATE ROLE "{part.owner}" NOLOGIN')
        await conn.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{copy}" OWNER "{part.owner}"')
        await _run(
            [
                str(pg_tool("pg_restore")),
                *_server(settings),
                "--no-owner",
                f"--role={part.owner}",
                "--exit-on-error",
                "-d",
                copy,
                str(stage / "databases" / f"{part.database}.dump"),
            ],
            settings,
        )
        await databases.label(conn, copy, name, part.database)
        # This machine's spare: the first restore renames it in, as after a save.
        await conn.execute(f'DROP DATABASE IF EXISTS "{store.spare_name(copy)}" WITH (FORCE)')
        await databases.make_spare(conn, copy, part.owner)
        size = int(await conn.fetchval("SELECT pg_database_size($1)", copy))
    return part.model_copy(
        update={"copy_name": copy, "live": live, "bytes": size, "spare": store.spare_name(copy)}
    )
