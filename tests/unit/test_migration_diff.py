"""The migrations diff, a pure function: pending files, recorded ones, and schema drift."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.migration_plan import (
    MIGRATION_EDITED,
    MigrationFile,
    checksum,
    migrations_diff,
    schema_drift,
)


def mig(name: str, sql: str = "SELECT 1;") -> MigrationFile:
    return MigrationFile(name, sql, checksum(sql.encode()))


FILES = [mig("0001_a.sql", "CREATE TABLE a (id int);"), mig("0002_b.sql", "CREATE TABLE b ();")]
SCHEMA = {"public.a": ["id"], "public.b": []}


def test_pending_files_are_creates_in_order() -> None:
    diff = migrations_diff("database x", FILES, {}, {}, {})
    assert [(c.kind, c.name, c.action) for c in diff.changes] == [
        ("migration", "0001_a.sql", "create"),
        ("migration", "0002_b.sql", "create"),
    ]
    assert diff.counts()["created"] == 2


def test_applied_files_are_unchanged_and_nothing_else_is_drift() -> None:
    applied = {m.name: m.checksum for m in FILES}
    diff = migrations_diff("database x", FILES, applied, SCHEMA, SCHEMA)
    assert [c.action for c in diff.changes] == ["unchanged", "unchanged"]
    assert diff.is_empty and diff.drift == []


def test_extra_tables_and_columns_are_drift_by_name() -> None:
    live = {**SCHEMA, "public.a": ["id", "note"], "public.by_hand": ["x"], "audit.events": []}
    assert [(c.kind, c.name, c.action) for c in schema_drift(live, SCHEMA)] == [
        ("table", "audit.events", "drift"),
        ("column", "public.a.note", "drift"),
        ("table", "public.by_hand", "drift"),
    ]


def test_tables_and_columns_the_applied_migrations_made_and_are_gone_are_drift() -> None:
    # `expected` is what the applied migrations create: a pending one is not in it.
    found = [(c.kind, c.name, c.action, c.fields) for c in schema_drift({"public.a": []}, SCHEMA)]
    assert found == [
        ("column", "public.a.id", "drift", ["missing"]),
        ("table", "public.b", "drift", ["missing"]),
    ]


def test_drift_is_reported_not_pending() -> None:
    applied = {m.name: m.checksum for m in FILES}
    diff = migrations_diff("database x", FILES, applied, {**SCHEMA, "public.c": []}, SCHEMA)
    assert diff.is_empty
    assert [c.label for c in diff.drift] == ["table:public.c"]
    assert diff.counts() == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2, "drift": 1}


def test_without_an_expected_schema_no_drift_is_claimed() -> None:
    diff = migrations_diff("database x", FILES, {}, {"public.c": []}, None)
    assert diff.drift == []


def test_a_recorded_file_that_is_gone_is_drift() -> None:
    applied = {m.name: m.checksum for m in FILES} | {"0000_old.sql": "abc"}
    diff = migrations_diff("database x", FILES, applied, SCHEMA, SCHEMA)
    assert [(c.label, c.fields) for c in diff.drift] == [
        ("migration:0000_old.sql", ["file missing"])
    ]


def test_an_edited_applied_file_is_refused() -> None:
    with pytest.raises(ApplicationError) as info:
        migrations_diff("database x", FILES, {"0001_a.sql": "0" * 64}, SCHEMA, SCHEMA)
    assert info.value.type == MIGRATION_EDITED and info.value.non_retryable


def test_digests_follow_files_and_live_state() -> None:
    applied = {FILES[0].name: FILES[0].checksum}
    a = migrations_diff("d", FILES, applied, SCHEMA, None)
    b = migrations_diff("d", FILES, applied, {**SCHEMA, "public.c": []}, None)
    c = migrations_diff("d", FILES[:1], applied, SCHEMA, None)
    assert a.desired_digest == b.desired_digest != c.desired_digest
    assert a.live_digest == c.live_digest != b.live_digest
