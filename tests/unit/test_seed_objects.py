"""A bucket's seed folder as objects: keys and hashes read from the files, names that cannot be
keys refused naming file and YAML path, the plan per mode; the example application's seed
data consistent with its files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from conceptor.activities.seed.files import SeedRefused
from conceptor.activities.seed.objects import LiveObject, plan_objects, read_folder
from conceptor.platform.settings import REPO_ROOT

WHERE = "environment.yaml: buckets[0].seed.folder"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "seed"
    (folder / "a" / "b").mkdir(parents=True, exist_ok=True)
    (folder / "top.txt").write_bytes(b"top")
    (folder / "a" / "b" / "deep.json").write_bytes(b'{"x": 1}')
    (folder / "a" / "pic.png").write_bytes(b"\x89PNG")
    return folder


def test_files_become_keys_with_their_hashes_and_types(tmp_path: Path) -> None:
    files = read_folder(_folder(tmp_path), "seed", WHERE)
    assert [(f.key, f.size, f.content_type) for f in files] == [
        ("a/b/deep.json", 8, "application/json"),
        ("a/pic.png", 4, "image/png"),
        ("top.txt", 3, "text/plain"),
    ]
    assert files[2].md5 == hashlib.md5(b"top", usedforsecurity=False).hexdigest()
    assert files[2].sha256 == hashlib.sha256(b"top").hexdigest()


def test_a_missing_folder_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SeedRefused) as info:
        read_folder(tmp_path / "nope", "nope", WHERE)
    assert str(info.value) == (f"{WHERE}: seed folder 'nope' does not exist ({tmp_path / 'nope'})")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("tab\there.txt", "its name holds control character(s) '\\t'; rename the file"),
        ("back\\slash.txt", "its name holds a backslash (MinIO treats it as a path separator)"),
    ],
)
def test_a_name_that_cannot_be_a_key_is_refused(tmp_path: Path, name: str, why: str) -> None:
    folder = _folder(tmp_path)
    (folder / "a" / name).write_bytes(b"x")
    with pytest.raises(SeedRefused) as info:
        read_folder(folder, "seed", WHERE)
    assert str(info.value).startswith(f"{WHERE}: seed/a/{name}: ")
    assert why in str(info.value)


def test_a_key_over_1024_bytes_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "seed"
    deep = folder
    for _ in range(6):
        deep = deep / ("d" * 200)
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"x")
    with pytest.raises(SeedRefused) as info:
        read_folder(folder, "seed", WHERE)
    assert "its key is 1211 bytes of UTF-8 (S3 allows 1024); rename the file" in str(info.value)


def _live(key: str, content: bytes, *, seeded: bool = False, etag: str | None = None) -> LiveObject:
    md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
    mark = hashlib.sha256(content).hexdigest() if seeded else None
    return LiveObject(key, etag or md5, len(content), mark)


def _changes(mode: str, live: dict[str, LiveObject], tmp_path: Path) -> list[tuple[str, ...]]:
    files = read_folder(_folder(tmp_path), "seed", WHERE)
    plan = plan_objects("media", mode, files, live, "seed")
    return [(c.kind, c.name, c.action, *c.fields) for c in plan.changes]


def test_the_plan_by_mode(tmp_path: Path) -> None:
    live = {
        "top.txt": _live("top.txt", b"edited by hand"),
        "a/pic.png": _live("a/pic.png", b"\x89PNG"),
        "gone.txt": _live("gone.txt", b"seeded once", seeded=True),
        "mine.txt": _live("mine.txt", b"uploaded by hand"),
    }
    assert _changes("insert-missing", live, tmp_path) == [
        ("seed-object", "media/a/b/deep.json", "create"),
        ("seed-object", "media/a/pic.png", "unchanged"),
        ("seed-object", "media/top.txt", "unchanged", "content"),
    ]
    assert _changes("enforce", live, tmp_path) == [
        ("object", "media/a/b/deep.json", "create"),
        ("object", "media/a/pic.png", "unchanged"),
        ("object", "media/top.txt", "update", "content"),
    ]
    # Only what seeding put there (its mark) is deleted; the hand upload stays.
    assert _changes("managed", live, tmp_path)[3:] == [("object", "media/gone.txt", "delete")]


def test_a_multipart_etag_compares_by_the_recorded_sha256(tmp_path: Path) -> None:
    """A multipart ETag is not an MD5: the SHA-256 seeding recorded decides."""
    ours = _live("top.txt", b"top", seeded=True, etag="0123456789abcdef0123456789abcdef-2")
    theirs = _live("top.txt", b"top", etag="0123456789abcdef0123456789abcdef-2")
    assert _changes("enforce", {"top.txt": ours}, tmp_path)[2] == (
        "object",
        "media/top.txt",
        "unchanged",
    )
    assert _changes("enforce", {"top.txt": theirs}, tmp_path)[2] == (
        "object",
        "media/top.txt",
        "update",
        "content",
    )


def test_the_example_applications_seed_rows_match_its_files() -> None:
    """Each seeded asset's original is in the media folder with its size; its thumbnails are
    in the thumbnails folder, one per size."""
    seed = REPO_ROOT / "services" / "central" / "seed"
    rows = yaml.safe_load((seed / "media_assets.yaml").read_text(encoding="utf-8"))
    assert len(rows) == 3
    originals = {f.key: f for f in read_folder(seed / "media", "media", WHERE)}
    thumbnails = {f.key for f in read_folder(seed / "thumbnails", "thumbnails", WHERE)}
    assert sorted(originals) == sorted(r["original_key"] for r in rows)
    for row in rows:
        assert originals[row["original_key"]].size == row["size_bytes"]
        assert originals[row["original_key"]].content_type == row["content_type"]
        assert row["original_key"] == f"{row['id']}/{row['filename']}"
        assert sorted(int(s) for s in row["thumbnails"]) == row["sizes"]
        assert {row["thumbnails"][str(s)] for s in row["sizes"]} == {
            f"{row['id']}/{s}.jpg" for s in row["sizes"]
        }
    assert thumbnails == {k for r in rows for k in r["thumbnails"].values()}
