"""Migration planning: order, checksums, edited files refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.migration_plan import (
    checksum,
    line_of,
    pending_migrations,
    read_migrations,
)


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, sql in files.items():
        (tmp_path / name).write_text(sql)
    return tmp_path


def test_read_migrations_sorted_with_checksums(tmp_path: Path) -> None:
    """Files come back in name order, each with the sha256 of its bytes."""
    folder = _write(tmp_path, {"0002_b.sql": "SELECT 2;", "0001_a.sql": "SELECT 1;"})
    files = read_migrations(folder)
    assert [f.name for f in files] == ["0001_a.sql", "0002_b.sql"]
    assert files[0].checksum == checksum(b"SELECT 1;")
    assert files[0].checksum == "17db4fd369edb9244b9f91d9aeed145c3d04ad8ba6e95d06247f07a63527d11a"


def test_read_migrations_refuses_a_badly_named_file(tmp_path: Path) -> None:
    """A .sql file without the NNNN_ prefix is a configuration error naming it."""
    folder = _write(tmp_path, {"0001_a.sql": "SELECT 1;", "init.sql": "SELECT 0;"})
    with pytest.raises(ApplicationError) as info:
        read_migrations(folder)
    assert info.value.message == (
        f"migration file init.sql in {folder} is not named NNNN_description.sql"
    )
    assert info.value.non_retryable


def test_read_migrations_missing_directory(tmp_path: Path) -> None:
    """A migrations directory that does not exist is named in the error."""
    with pytest.raises(ApplicationError, match=f"migrations directory {tmp_path}/nope does not"):
        read_migrations(tmp_path / "nope")


def test_pending_migrations_skips_applied(tmp_path: Path) -> None:
    """Only files absent from the record are pending, in order."""
    files = read_migrations(
        _write(tmp_path, {"0001_a.sql": "A", "0002_b.sql": "B", "0003_c.sql": "C"})
    )
    applied = {"0001_a.sql": checksum(b"A"), "0002_b.sql": checksum(b"B")}
    assert [m.name for m in pending_migrations(files, applied)] == ["0003_c.sql"]
    assert pending_migrations(files, {}) == files


def test_pending_migrations_refuses_an_edited_applied_file(tmp_path: Path) -> None:
    """A changed checksum of an applied file is a non-retryable error that names the file."""
    files = read_migrations(_write(tmp_path, {"0001_a.sql": "A2", "0002_b.sql": "B"}))
    recorded = checksum(b"A")
    with pytest.raises(ApplicationError) as info:
        pending_migrations(files, {"0001_a.sql": recorded})
    assert info.value.type == "MigrationEdited"
    assert info.value.non_retryable
    assert info.value.message == (
        f"migration 0001_a.sql was edited after it was applied (recorded checksum "
        f"{recorded[:12]}, file now {checksum(b'A2')[:12]}): restore the file and put the "
        "change in a new migration"
    )


def test_line_of_position() -> None:
    """A server-reported 1-based character position maps to its line."""
    sql = "SELECT 1;\nSELECT 2;\nSELEC 3;"
    assert line_of(sql, "21") == 3
    assert line_of(sql, 1) == 1
    assert line_of(sql, None) is None
    assert line_of(sql, "x") is None
