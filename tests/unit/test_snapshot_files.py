"""Snapshot names, database copy names and the export file's checks, without servers."""

from __future__ import annotations

import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.snapshot.archive import SUMS, _unpack_checked
from conceptor.activities.snapshot.store import COPY_PREFIX, copy_name
from conceptor.snapshot_contracts import BucketPart, SnapshotManifest, check_name


@pytest.mark.parametrize("name", ["a", "before-demo", "v1.2_rc", "x" * 48])
def test_names_a_snapshot_may_have(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Upper", "-dash", "_x", "has space", "a/b", "x" * 49])
def test_names_refused_with_what_a_name_may_be(name: str) -> None:
    with pytest.raises(ValueError, match="1-48 characters, lower-case letters, digits"):
        check_name(name)


def test_copy_names_fit_postgres_and_never_collide() -> None:
    names = {copy_name(n, d) for n in ("a", "b", "x" * 48) for d in ("conceptor", "y" * 63)}
    assert len(names) == 6
    assert all(len(c.encode()) <= 63 and c.startswith(COPY_PREFIX) for c in names)
    assert copy_name("a", "conceptor") == copy_name("a", "conceptor")


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _export(path: Path, members: dict[str, bytes], sums: dict[str, bytes] | None = None) -> None:
    listed = members if sums is None else sums
    text = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(listed.items()))
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            _member(tar, name, data)
        _member(tar, SUMS, text.encode())


def _members() -> dict[str, bytes]:
    manifest = SnapshotManifest(
        name="s1",
        created_at=datetime(2026, 12, 3, tzinfo=UTC),
        buckets=[BucketPart(bucket="media", objects=1, bytes=5)],
    )
    return {"manifest.json": manifest.model_dump_json().encode(), "objects/media/a": b"hello"}


def test_a_whole_file_unpacks_to_its_manifest(tmp_path: Path) -> None:
    _export(tmp_path / "f.tar", _members())
    stage = tmp_path / "stage"
    stage.mkdir()
    manifest = _unpack_checked(tmp_path / "f.tar", stage)
    assert manifest.name == "s1"
    assert (stage / "objects" / "media" / "a").read_bytes() == b"hello"


def _refusal(tmp_path: Path) -> str:
    stage = tmp_path / "stage"
    stage.mkdir()
    with pytest.raises(ApplicationError) as refused:
        _unpack_checked(tmp_path / "f.tar", stage)
    assert refused.value.type == "SnapshotCorrupt"
    assert refused.value.non_retryable
    return str(refused.value)


def test_a_changed_member_is_refused_by_name(tmp_path: Path) -> None:
    members = _members()
    _export(tmp_path / "f.tar", {**members, "objects/media/a": b"HELLO"}, sums=members)
    assert "objects/media/a fails its checksum" in _refusal(tmp_path)


def test_a_member_missing_from_the_sums_is_refused(tmp_path: Path) -> None:
    members = _members()
    _export(tmp_path / "f.tar", {**members, "objects/media/b": b"x"}, sums=members)
    assert "members and SHA256SUMS differ: ['objects/media/b']" in _refusal(tmp_path)


def test_a_manifest_counting_other_objects_is_refused(tmp_path: Path) -> None:
    members = _members()
    del members["objects/media/a"]
    _export(tmp_path / "f.tar", members)
    assert "bucket media has 0 objects, its manifest 1" in _refusal(tmp_path)


def test_a_file_that_is_no_tar_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.tar").write_bytes(b"not a tar at all" * 100)
    assert "not a snapshot file" in _refusal(tmp_path)
