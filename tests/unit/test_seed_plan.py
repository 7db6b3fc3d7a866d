"""Seed data's pure part: files read (CSV quoting, non-ASCII), rows checked against a schema
with the file, row and column named, references as natural keys, and per mode what to do from
what comparing with the live rows found (the comparing itself is SQL: the integration test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conceptor.activities.seed import plan as plan_module
from conceptor.activities.seed.files import SeedRefused, SeedRow, read_rows
from conceptor.activities.seed.plan import (
    LISTED,
    Desired,
    LiveTable,
    SeedTable,
    TablePlan,
    decide,
    desired_rows,
    order,
    record_key,
)
from conceptor.activities.seed.values import Column

CSV = 'email,name,bio\r\na@x,"Zoë, the ""first""","line one\nline two"\r\nb@x,Bo,\r\n'


def test_csv_keeps_quotes_commas_newlines_and_non_ascii(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(CSV, encoding="utf-8")
    assert read_rows(path, "users.csv") == [
        SeedRow(1, {"email": "a@x", "name": 'Zoë, the "first"', "bio": "line one\nline two"}),
        SeedRow(2, {"email": "b@x", "name": "Bo", "bio": None}),
    ]


def test_yaml_and_json_rows(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- {id: 1, ok: true}\n- {id: 2}\n")
    (tmp_path / "a.json").write_text('[{"id": 1}]')
    assert read_rows(tmp_path / "a.yaml") == [
        SeedRow(1, {"id": 1, "ok": True}),
        SeedRow(2, {"id": 2}),
    ]
    assert read_rows(tmp_path / "a.json") == [SeedRow(1, {"id": 1})]


def test_yaml_written_one_json_mapping_a_line_reads_as_yaml_does(tmp_path: Path) -> None:
    lines = '- {"id": 1, "name": "Zo\\u00eb \\"q\\"", "ok": true, "w": 1.5, "x": null}\n'
    (tmp_path / "a.yaml").write_text(lines + '- {"id": 2, "size": 1e5}\n')
    # JSON would read 1e5 as a number; YAML 1.1 reads it as a string, and so does the file.
    assert read_rows(tmp_path / "a.yaml") == [
        SeedRow(1, {"id": 1, "name": 'Zoë "q"', "ok": True, "w": 1.5, "x": None}),
        SeedRow(2, {"id": 2, "size": "1e5"}),
    ]
    (tmp_path / "b.yaml").write_text(lines)
    assert read_rows(tmp_path / "b.yaml") == [
        SeedRow(1, {"id": 1, "name": 'Zoë "q"', "ok": True, "w": 1.5, "x": None})
    ]


def test_a_csv_row_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(SeedRefused, match=r"^u\.csv: row 2: 1 field\(s\), the header has 2$"):
        read_rows(tmp_path / "u.csv", "u.csv")


def _cols(**types: str) -> dict[str, Column]:
    return {
        n: Column(n, t, {"int4": "integer", "bool": "boolean"}.get(t, t)) for n, t in types.items()
    }


USERS = LiveTable(columns=_cols(id="int4", email="text", name="text"), primary_key=("id",))


def _seed(rows: list[dict[str, Any]], mode: str = "insert-missing", **kw: Any) -> SeedTable:
    return SeedTable(
        table=kw.get("table", "users"),
        file=kw.get("file", "users.yaml"),
        key=kw.get("key", ("email",)),
        mode=mode,
        references=kw.get("references", {}),
        rows=[SeedRow(i, r) for i, r in enumerate(rows, 1)],
    )


def _desired(
    seed: SeedTable,
    live: LiveTable,
    schema: dict[str, LiveTable] | None = None,
    parents: dict[str, Desired] | None = None,
) -> Desired:
    return desired_rows(seed, live, schema or {seed.table: live}, parents or {})


FILE = [{"email": "a@x", "name": "A"}, {"email": "b@x", "name": "B"}]
# What comparing found: a@x's live row (0,1) differs in name, b@x has no live row.
FOUND: list[tuple[int, str | None, list[str]]] = [(1, None, []), (0, "(0,1)", ["name"])]
Z = record_key(("z@x",))


def _plan(seed: SeedTable, gone: list[tuple[str, Any, str | None]] | None = None) -> TablePlan:
    return decide(seed, _desired(seed, USERS).rows, FOUND, gone or [])


def _actions(plan: TablePlan) -> list[tuple[str, str, str, list[str]]]:
    return [(c.kind, c.name, c.action, c.fields) for c in plan.changes]


def test_insert_missing_creates_and_leaves_an_edited_row_alone() -> None:
    plan = _plan(_seed(FILE), [(Z, ("z@x",), "(0,2)")])
    assert _actions(plan) == [
        ("seed-row", "users(a@x)", "unchanged", ["name"]),
        ("seed-row", "users(b@x)", "create", []),
    ]
    assert (len(plan.create), plan.update, plan.delete, plan.unchanged) == (1, [], [], 1)
    assert (plan.forget, plan.left_out) == ([], {})


def test_enforce_updates_an_edited_row_and_deletes_nothing() -> None:
    plan = _plan(_seed(FILE, "enforce"), [(Z, ("z@x",), "(0,2)")])
    assert _actions(plan) == [
        ("row", "users(a@x)", "update", ["name"]),
        ("row", "users(b@x)", "create", []),
    ]
    assert [(r.key, ctid, f) for r, ctid, f in plan.update] == [(("a@x",), "(0,1)", ["name"])]
    assert plan.delete == []


def test_managed_deletes_only_what_seeding_inserted() -> None:
    plan = _plan(_seed(FILE, "managed"), [(Z, ("z@x",), "(0,2)"), ('["gone@x"]', None, None)])
    assert plan.delete == [(("z@x",), "(0,2)")]
    assert ("row", "users(z@x)", "delete", []) in _actions(plan)
    assert plan.forget == ['["gone@x"]']  # recorded, no longer live: the record goes


def test_rows_equal_to_the_file_are_counted_and_past_the_first_listed_too() -> None:
    rows = [{"email": f"u{i}@x"} for i in range(LISTED + 3)]
    seed = _seed(rows, "enforce")
    found: list[tuple[int, str | None, list[str]]] = [(i, None, []) for i in range(LISTED + 1)]
    plan = decide(seed, _desired(seed, USERS).rows, found, [])
    assert [c.name for c in plan.changes[:2]] == ["users(u0@x)", "users(u1@x)"]
    assert (len(plan.changes), len(plan.create), plan.unchanged) == (LISTED, LISTED + 1, 2)
    assert plan.left_out == {"create": 1, "unchanged": 2}


def test_a_column_that_does_not_exist_is_refused_naming_file_row_and_column() -> None:
    seed = _seed([{"email": "a@x"}, {"email": "b@x", "full_name": "B"}])
    with pytest.raises(SeedRefused) as caught:
        _desired(seed, USERS)
    assert str(caught.value) == (
        "users.yaml: row 2: column 'full_name' does not exist in table users "
        "(it has id, email, name)"
    )


def test_a_value_that_does_not_parse_is_refused() -> None:
    seed = _seed([{"email": "a@x", "id": 7}, {"email": "b@x", "id": "seven"}])
    with pytest.raises(SeedRefused) as caught:
        _desired(seed, USERS)
    assert str(caught.value) == (
        "users.yaml: row 2: column 'id': 'seven' does not parse as integer: not an integer"
    )


def test_a_key_repeated_in_the_file_is_refused() -> None:
    seed = _seed([{"email": "a@x"}, {"email": "b@x"}, {"email": "a@x"}])
    with pytest.raises(SeedRefused) as caught:
        _desired(seed, USERS)
    assert str(caught.value) == (
        "users.yaml: row 3: column(s) email: key (a@x) is not unique in the file (row 1 has it too)"
    )


def test_a_key_without_a_value_is_refused() -> None:
    seed = _seed([{"email": "a@x"}, {"name": "B"}])
    with pytest.raises(SeedRefused) as caught:
        _desired(seed, USERS)
    assert str(caught.value) == "users.yaml: row 2: column 'email': the key needs a value"


def test_rows_are_staged_with_the_columns_they_give_and_their_record_key() -> None:
    seed = _seed([{"email": "a@x", "id": "7"}, {"name": "B", "email": "b@x"}])
    desired = _desired(seed, USERS)
    assert desired.given == ["id", "email", "name"]
    assert desired.staged == [
        (0, "110", '["a@x"]', 7, "a@x", None),
        (1, "011", '["b@x"]', None, "b@x", "B"),
    ]


ASSETS = LiveTable(
    columns=_cols(id="int4", owner_id="int4", title="text"),
    primary_key=("id",),
    foreign={"owner_id": ("users", "id")},
)


def _assets(rows: list[dict[str, Any]]) -> SeedTable:
    return _seed(
        rows,
        "enforce",
        table="assets",
        file="assets.yaml",
        key=("owner_id", "title"),
        references={"owner_id": ("users", ("email",))},
    )


def test_a_reference_holds_the_referenced_natural_key() -> None:
    schema = {"users": USERS, "assets": ASSETS}
    parent = _desired(_seed(FILE), USERS)
    seed = _assets([{"owner_id": "b@x", "title": "logo"}, {"owner_id": "zed@x", "title": "x"}])
    desired = _desired(seed, ASSETS, schema, {"users": parent})
    assert desired.rows[0].values == {"owner_id": ("b@x",), "title": "logo"}
    assert desired.rows[0].key == (("b@x",), "logo")
    assert desired.targets == {"owner_id": "id"}
    assert desired.staged[0] == (0, "11", '[["b@x"],"logo"]', "b@x", "logo")
    # Not in the referenced file: looked for among the live rows before any write.
    assert desired.unresolved == [(1, "owner_id", ("zed@x",))]


def test_a_reference_that_cannot_be_a_key_is_refused() -> None:
    schema = {"users": USERS, "assets": ASSETS}
    seed = _seed(
        [{"owner_id": "seven", "title": "logo"}],
        table="assets",
        file="assets.yaml",
        key=("owner_id", "title"),
        references={"owner_id": ("users", ("id",))},
    )
    with pytest.raises(SeedRefused) as caught:
        _desired(seed, ASSETS, schema, {"users": _desired(_seed(FILE), USERS)})
    assert (
        str(caught.value) == "assets.yaml: row 1: column 'owner_id': no row of users has id = seven"
    )


def test_referenced_tables_come_first_and_a_cycle_is_refused() -> None:
    assets, users = _assets([]), _seed([])
    assert [s.table for s in order([assets, users])] == ["users", "assets"]
    loop = _seed([], table="users", references={"owner_id": ("assets", ("title",))})
    with pytest.raises(SeedRefused, match="in a cycle: assets -> users -> assets"):
        order([assets, loop])


def test_a_csv_reference_to_a_several_column_key_is_given_as_a_slash_b() -> None:
    owners = LiveTable(columns=_cols(id="int4", org="text", login="text"), primary_key=("id",))
    owner_seed = _seed([{"org": "acme", "login": "zoë"}], table="owners", key=("org", "login"))
    parent = _desired(owner_seed, owners)
    seed = SeedTable(
        table="assets",
        file="assets.csv",
        key=("owner_id", "title"),
        mode="enforce",
        references={"owner_id": ("owners", ("org", "login"))},
        rows=[SeedRow(1, {"owner_id": "acme/zoë", "title": "logo"})],
        from_text=True,
    )
    desired = _desired(seed, ASSETS, {"owners": owners, "assets": ASSETS}, {"owners": parent})
    assert desired.rows[0].key == (("acme", "zoë"), "logo")
    assert desired.unresolved == []
    plan = decide(seed, desired.rows, [(0, None, [])], [])
    assert _actions(plan) == [("row", "assets(acme/zoë, logo)", "create", [])]


def test_parsing_a_column_at_a_time_gives_what_row_by_row_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = LiveTable(columns=_cols(id="int4", email="text", active="bool"), primary_key=("id",))
    schema = {"users": users, "assets": ASSETS}
    parent = _desired(_seed([{"email": "a@x", "active": "yes"}, {"email": "b@x"}]), users)
    rows = [
        {"owner_id": "a@x", "title": "logo", "id": "7"},
        {"owner_id": "zed@x", "title": "logo", "id": None},
        {"owner_id": "a@x", "title": "x", "id": 9},
    ]
    fast = _desired(_assets(rows), ASSETS, schema, {"users": parent})

    def slow(self: Any, given: list[str]) -> Desired:
        raise plan_module._Slow

    monkeypatch.setattr(plan_module._Parsing, "_by_column", slow)
    by_row = _desired(_assets(rows), ASSETS, schema, {"users": parent})
    assert (
        fast.staged
        == by_row.staged
        == [
            (0, "111", '[["a@x"],"logo"]', 7, "a@x", "logo"),
            (1, "111", '[["zed@x"],"logo"]', None, "zed@x", "logo"),
            (2, "111", '[["a@x"],"x"]', 9, "a@x", "x"),
        ]
    )
    assert (fast.rows, fast.keys, fast.unresolved) == (by_row.rows, by_row.keys, by_row.unresolved)
    assert fast.unresolved == [(1, "owner_id", ("zed@x",))]
