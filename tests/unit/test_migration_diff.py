"""The migrations diff, a pure function: pending files, recorded ones, and schema drift."""

from __future__ import annotations

from typing import Literal

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.migration_plan import (
    MIGRATION_EDITED,
    MigrationFile,
    Schema,
    Table,
    checksum,
    labels,
    migrations_diff,
    schema_drift,
)


def mig(name: str, sql: str = "SELECT 1;") -> MigrationFile:
    return MigrationFile(name, sql, checksum(sql.encode()))


def table(
    columns: list[str],
    constraints: list[str] | None = None,
    indexes: list[str] | None = None,
    triggers: list[str] | None = None,
    kind: str = "table",
    definitions: dict[str, str] | None = None,
) -> Table:
    kinds: dict[str, Literal["table", "view", "function", "type", "sequence"]] = {
        "sequence": "sequence",
        "view": "view",
        "function": "function",
        "type": "type",
    }
    return Table(
        kind=kinds.get(kind, "table"),
        columns=columns,
        constraints=constraints or [],
        indexes=indexes or [],
        triggers=triggers or [],
        definitions=definitions or {},
    )


FILES = [mig("0001_a.sql", "CREATE TABLE a (id int);"), mig("0002_b.sql", "CREATE TABLE b ();")]
SCHEMA: Schema = {"public.a": table(["id"]), "public.b": table([])}


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
    live = {
        **SCHEMA,
        "public.a": table(["id", "note"]),
        "public.by_hand": table(["x"]),
        "audit.events": table([]),
    }
    assert [(c.kind, c.name, c.action) for c in schema_drift(live, SCHEMA)] == [
        ("table", "audit.events", "drift"),
        ("column", "public.a.note", "drift"),
        ("table", "public.by_hand", "drift"),
    ]


def test_what_the_applied_migrations_made_and_is_gone_is_a_create_naming_its_file() -> None:
    # `expected` is what the applied migrations create: a pending one is not in it.
    sources = {"table:public.b": "0002_b.sql", "column:public.a.id": "0001_a.sql"}
    found = [
        (c.kind, c.name, c.action, c.fields, c.source)
        for c in schema_drift({"public.a": table([])}, SCHEMA, sources)
    ]
    assert found == [
        ("column", "public.a.id", "create", ["missing"], "0001_a.sql"),
        ("table", "public.b", "create", ["missing"], "0002_b.sql"),
    ]


def test_missing_constraints_indexes_and_triggers_are_creates_extra_ones_drift() -> None:
    want = {"public.a": table(["id"], ["a_pkey", "a_fk"], ["a_idx"], ["a_touch"])}
    have = {"public.a": table(["id"], ["a_pkey", "by_hand"], [], ["a_touch"])}
    found = [(c.label, c.action) for c in schema_drift(have, want)]
    assert found == [
        ("constraint:public.a.by_hand", "drift"),
        ("constraint:public.a.a_fk", "create"),
        ("index:public.a_idx", "create"),  # index names are unique per schema
    ]


def test_an_object_that_cannot_be_rebuilt_is_drift_saying_why() -> None:
    why = {"table:public.b": "it is partitioned or a partition"}
    (change,) = schema_drift({"public.a": table(["id"])}, SCHEMA, {}, why)
    assert (change.label, change.action) == ("table:public.b", "drift")
    assert change.fields == ["missing", "cannot be rebuilt: it is partitioned or a partition"]


def test_a_changed_view_index_constraint_or_trigger_is_an_update_a_column_drift() -> None:
    want = {
        "public.v": table(["a", "b"], kind="view", definitions={"view": "v SELECT a, b"}),
        "public.t": table(
            ["x"],
            ["t_check"],
            ["t_idx"],
            ["t_touch"],
            definitions={
                "column:x": "x integer NOT NULL",
                "constraint:t_check": "CHECK (x > 0)",
                "index:t_idx": "CREATE INDEX t_idx ON public.t (x)",
                "trigger:t_touch": "CREATE TRIGGER t_touch BEFORE UPDATE",
            },
        ),
    }
    have = {
        "public.v": table(["a"], kind="view", definitions={"view": "v SELECT a"}),
        "public.t": table(
            ["x"],
            ["t_check"],
            ["t_idx"],
            ["t_touch"],
            definitions={
                "column:x": "x bigint",
                "constraint:t_check": "CHECK (x > 1)",
                "index:t_idx": "CREATE INDEX t_idx ON public.t (x DESC)",
                "trigger:t_touch": "CREATE TRIGGER t_touch BEFORE UPDATE",
            },
        ),
    }
    sources = {"index:public.t_idx": "0001_a.sql"}
    found = [(c.label, c.action, c.fields, c.source) for c in schema_drift(have, want, sources)]
    assert found == [
        (
            "column:public.t.x",
            "drift",
            ["definition", "migrations: x integer NOT NULL", "live: x bigint"],
            "",
        ),
        ("constraint:public.t.t_check", "update", ["definition"], ""),
        ("index:public.t_idx", "update", ["definition"], "0001_a.sql"),
        ("view:public.v", "update", ["definition"], ""),
    ]


def test_a_table_where_the_migrations_make_a_view_is_drift() -> None:
    want = {"public.t": table(["x"])}
    have = {"public.t": table(["x"], kind="view")}
    found = [(c.label, c.action, c.fields) for c in schema_drift(have, want)]
    assert found == [("table:public.t", "drift", ["a view, the migrations create a table"])]


def test_labels_name_every_object_as_changes_do() -> None:
    schema = {"s.t": table(["c"], ["k"], ["i"], ["g"]), "s.v": table([], kind="view")}
    assert labels(schema) == {
        "table:s.t",
        "column:s.t.c",
        "constraint:s.t.k",
        "index:s.i",
        "trigger:s.t.g",
        "view:s.v",
    }


def test_drift_is_reported_not_pending() -> None:
    applied = {m.name: m.checksum for m in FILES}
    live = {**SCHEMA, "public.c": table([])}
    diff = migrations_diff("database x", FILES, applied, live, SCHEMA)
    assert diff.is_empty
    assert [c.label for c in diff.drift] == ["table:public.c"]
    assert diff.counts() == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2, "drift": 1}


def test_without_an_expected_schema_no_drift_is_claimed() -> None:
    diff = migrations_diff("database x", FILES, {}, {"public.c": table([])}, None)
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
    b = migrations_diff("d", FILES, applied, {**SCHEMA, "public.c": table([])}, None)
    c = migrations_diff("d", FILES[:1], applied, SCHEMA, None)
    assert a.desired_digest == b.desired_digest != c.desired_digest
    assert a.live_digest == c.live_digest != b.live_digest


def test_functions_are_compared_by_signature_then_body() -> None:
    def fn(body: str) -> Table:
        return table([], kind="function", definitions={"function": body})

    want = {"public.f(integer)": fn("CREATE FUNCTION f ... 1"), "public.g()": fn("g")}
    have = {"public.f(integer)": fn("CREATE FUNCTION f ... 2"), "public.h()": fn("h")}
    found = [(c.label, c.action, c.fields) for c in schema_drift(have, want)]
    assert found == [
        ("function:public.f(integer)", "update", ["definition"]),
        ("function:public.g()", "create", ["missing"]),
        ("function:public.h()", "drift", []),
    ]


def test_a_changed_type_is_drift_naming_both_definitions_a_gone_one_a_create() -> None:
    def enum(values: str) -> Table:
        return table([], kind="type", definitions={"type": f"ENUM ({values})"})

    want = {"public.state": enum("'a'"), "public.mood": enum("'ok'")}
    have = {"public.state": enum("'a', 'b'")}
    found = [(c.label, c.action, c.fields) for c in schema_drift(have, want)]
    assert found == [
        ("type:public.mood", "create", ["missing"]),
        (
            "type:public.state",
            "drift",
            ["definition", "migrations: ENUM ('a')", "live: ENUM ('a', 'b')"],
        ),
    ]


def test_a_changed_sequence_is_drift_never_an_update() -> None:
    def seq(increment: int) -> Table:
        return table([], kind="sequence", definitions={"sequence": f"INCREMENT BY {increment}"})

    (change,) = schema_drift({"public.n": seq(5)}, {"public.n": seq(10)})
    assert (change.label, change.action) == ("sequence:public.n", "drift")
