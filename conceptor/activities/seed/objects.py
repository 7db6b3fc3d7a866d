"""A bucket's seed folder as objects (key = the file's path in the folder), compared with the
bucket's objects by content hash; what to upload and delete per mode, apart from any I/O."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path

from conceptor.activities.seed.files import SeedRefused
from conceptor.contracts import Change

# User metadata on every object seeding uploads: the SHA-256 of the content it put there.
# It marks the object as seeding's (`managed` deletes only such objects) and travels with it:
# a hand upload to the same key replaces the object and its metadata, and is then not ours.
SEED_METADATA = "conceptor-seed-sha256"
# S3: a key is at most 1024 bytes of UTF-8; one PUT at most 5 GiB.
MAX_KEY_BYTES = 1024
MAX_PUT_BYTES = 5 * 1024**3
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SeedFile:
    """One file of a seed folder: the object it becomes and its content's hashes."""

    key: str
    path: Path
    size: int
    md5: str  # what S3 gives as the ETag of a single-part upload
    sha256: str
    content_type: str


@dataclass(frozen=True)
class LiveObject:
    """An object as the bucket lists it; `seeded` is the SHA-256 seeding recorded on it
    (None: not put there by seeding, or its metadata not read)."""

    key: str
    etag: str
    size: int
    seeded: str | None = None

    @property
    def plain_etag(self) -> bool:
        """An MD5 of the content (single-part upload): a multipart ETag is `<md5>-<parts>`."""
        return len(self.etag) == 32 and "-" not in self.etag


@dataclass
class ObjectPlan:
    """What seeding one bucket does."""

    bucket: str
    mode: str
    create: list[SeedFile] = field(default_factory=list)
    update: list[SeedFile] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """insert-missing objects are the developer's once they exist: not watched for drift."""
        return "seed-object" if self.mode == "insert-missing" else "object"

    def counts_line(self) -> str:
        return (
            f"{self.bucket}: {len(self.create)} created, {len(self.update)} updated, "
            f"{len(self.delete)} deleted, {self.unchanged} unchanged"
        )


def _key_problem(key: str) -> str | None:
    """Why `key` (a relative path with `/`) cannot be an object key, or None."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if len(encoded) > MAX_KEY_BYTES:
        return f"its key is {len(encoded)} bytes of UTF-8 (S3 allows {MAX_KEY_BYTES})"
    bad = sorted({c for c in key if ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        return f"its name holds control character(s) {', '.join(repr(c) for c in bad)}"
    if "\\" in key:
        return "its name holds a backslash (MinIO treats it as a path separator)"
    return None


def _hashes(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def read_folder(folder: Path, shown: str, where: str) -> list[SeedFile]:
    """The folder's files as objects, sorted by key; anything that cannot become an object is
    refused (SeedRefused) naming the file and `where` (the YAML path of the declaration)."""
    if not folder.is_dir():
        raise SeedRefused(f"{where}: seed folder {shown!r} does not exist ({folder})")
    out: list[SeedFile] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            key = path.relative_to(folder).as_posix()
            named = f"{where}: {shown}/{key}"
            why = _key_problem(key)
            if why is not None:
                raise SeedRefused(f"{named}: {why}; rename the file")
            if not path.is_file():
                raise SeedRefused(f"{named}: not a regular file (a broken link?)")
            try:
                size = path.stat().st_size
                if size > MAX_PUT_BYTES:
                    raise SeedRefused(f"{named}: {size} bytes, over S3's 5 GiB for one upload")
                md5, sha = _hashes(path)
            except OSError as exc:
                raise SeedRefused(f"{named}: cannot be read: {exc.strerror}") from None
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            out.append(SeedFile(key, path, size, md5, sha, kind))
    return sorted(out, key=lambda f: f.key)


def same_content(file: SeedFile, live: LiveObject) -> bool:
    """Whether the object holds the file's bytes: its ETag is the file's MD5 (single-part),
    or seeding recorded the file's SHA-256 on it (a multipart or encrypted object's ETag is
    not an MD5)."""
    if live.plain_etag and live.etag == file.md5:
        return True
    return live.seeded == file.sha256 and live.size == file.size


def plan_objects(
    bucket: str, mode: str, files: list[SeedFile], live: dict[str, LiveObject], shown: str
) -> ObjectPlan:
    """Per file: create (no such object), update (other content; not under insert-missing)
    or unchanged; under `managed`, delete the objects seeding put there that no file gives."""
    plan = ObjectPlan(bucket, mode)
    wanted = {f.key for f in files}
    for file in files:
        found = live.get(file.key)
        name, source = f"{bucket}/{file.key}", f"{shown}/{file.key}"
        if found is None:
            plan.create.append(file)
            plan.changes.append(Change(kind=plan.kind, name=name, action="create", source=source))
            continue
        fields = [] if same_content(file, found) else ["content"]
        if fields and mode != "insert-missing":
            plan.update.append(file)
            action = "update"
        else:
            plan.unchanged += 1
            action = "unchanged"
        plan.changes.append(
            Change(kind=plan.kind, name=name, action=action, fields=fields, source=source)
        )
    if mode == "managed":
        for key in sorted(live):
            if key not in wanted and live[key].seeded is not None:
                plan.delete.append(key)
                plan.changes.append(Change(kind=plan.kind, name=f"{bucket}/{key}", action="delete"))
    return plan
