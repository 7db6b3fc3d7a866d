"""Seed data's pure part: files read (CSV quoting, non-ASCII), rows checked against a schema
with the file, row and column named, and the diff per mode, references by natural key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conceptor.activities.seed.files import SeedRefused, SeedRow, read_rows
from conceptor.activities.seed.plan import (
    LiveTable,
    SeedTable,
    TablePlan,
    order,
    plan_table,
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


def _live(table: LiveTable, rows: list[dict[str, Any]]) -> LiveTable:
    return LiveTable(
        table.columns,
        table.primary_key,
        table.foreign,
        [{"ctid": f"(0,{i})", **r} for i, r in enumerate(rows, 1)],
    )


def _plan(seed: SeedTable, live: LiveTable, recorded: set[str] | None = None) -> TablePlan:
    return plan_table(seed, live, {seed.table: live}, {}, recorded or set())


FILE = [{"email": "a@x", "name": "A"}, {"email": "b@x", "name": "B"}]
LIVE = [{"id": 1, "email": "a@x", "name": "edited"}, {"id": 7, "email": "z@x", "name": "Z"}]


def _actions(plan: TablePlan) -> list[tuple[str, str, str, list[str]]]:
    return [(c.kind, c.name, c.action, c.fields) for c in plan.changes]


def test_insert_missing_creates_and_leaves_an_edited_row_alone() -> None:
    plan = _plan(_seed(FILE), _live(USERS, LIVE))
    assert _actions(plan) == [
        ("seed-row", "users(a@x)", "unchanged", ["name"]),
        ("seed-row", "users(b@x)", "create", []),
    ]
    assert (len(plan.create), plan.update, plan.delete, plan.unchanged) == (1, [], [], 1)


def test_enforce_updates_an_edited_row_and_deletes_nothing() -> None:
    plan = _plan(_seed(FILE, "enforce"), _live(USERS, LIVE), {record_key(("z@x",))})
    assert _actions(plan) == [
        ("row", "users(a@x)", "update", ["name"]),
        ("row", "users(b@x)", "create", []),
    ]
    assert [(r.key, ctid, f) for r, ctid, f in plan.update] == [(("a@x",), "(0,1)", ["name"])]


def test_managed_deletes_only_what_seeding_inserted() -> None:
    live = [*LIVE, {"id": 8, "email": "hand@x", "name": "H"}]
    plan = _plan(_seed(FILE, "managed"), _live(USERS, live), {record_key(("z@x",)), '["gone@x"]'})
    assert plan.delete == [(("z@x",), "(0,2)")]
    assert ("row", "users(z@x)", "delete", []) in _actions(plan)
    assert plan.forget == ['["gone@x"]']  # recorded, no longer live: the record goes


def test_a_column_that_does_not_exist_is_refused_naming_file_row_and_column() -> None:
    seed = _seed([{"email": "a@x"}, {"email": "b@x", "full_name": "B"}])
    with pytest.raises(SeedRefused) as caught:
        _plan(seed, _live(USERS, []))
    assert str(caught.value) == (
        "users.yaml: row 2: column 'full_name' does not exist in table users "
        "(it has id, email, name)"
    )


def test_a_value_that_does_not_parse_is_refused() -> None:
    seed = _seed([{"email": "a@x", "id": "seven"}])
    with pytest.raises(SeedRefused) as caught:
        _plan(seed, _live(USERS, []))
    assert str(caught.value) == (
        "users.yaml: row 1: column 'id': 'seven' does not parse as integer: not an integer"
    )


def test_a_key_repeated_in_the_file_is_refused() -> None:
    seed = _seed([{"email": "a@x"}, {"email": "b@x"}, {"email": "a@x"}])
    with pytest.raises(SeedRefused) as caught:
        _plan(seed, _live(USERS, []))
    assert str(caught.value) == (
        "users.yaml: row 3: column(s) email: key (a@x) is not unique in the file (row 1 has it too)"
    )


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


def test_references_compare_by_the_referenced_natural_key() -> None:
    users = _live(USERS, [{"id": 1, "email": "a@x", "name": "A"}, {"id": 2, "email": "b@x"}])
    parent = plan_table(_seed(FILE), users, {"users": users}, {}, set())
    assets = _live(ASSETS, [{"id": 5, "owner_id": 2, "title": "logo"}])
    seed = _assets([{"owner_id": "b@x", "title": "logo"}, {"owner_id": "a@x", "title": "logo"}])
    plan = plan_table(seed, assets, {"users": users, "assets": assets}, {"users": parent}, set())
    assert _actions(plan) == [
        ("row", "assets(b@x, logo)", "unchanged", []),
        ("row", "assets(a@x, logo)", "create", []),
    ]
    assert plan.create[0].values == {"owner_id": ("a@x",), "title": "logo"}


def test_a_reference_to_no_seeded_or_live_row_is_refused() -> None:
    users = _live(USERS, [])
    parent = plan_table(_seed(FILE), users, {"users": users}, {}, set())
    seed = _assets([{"owner_id": "nobody@x", "title": "logo"}])
    with pytest.raises(SeedRefused) as caught:
        plan_table(seed, _live(ASSETS, []), {"users": users}, {"users": parent}, set())
    assert str(caught.value) == (
        "assets.yaml: row 1: column 'owner_id': no row of users has email = nobody@x"
    )


def test_referenced_tables_come_first_and_a_cycle_is_refused() -> None:
    assets, users = _assets([]), _seed([])
    assert [s.table for s in order([assets, users])] == ["users", "assets"]
    loop = _seed([], table="users", references={"owner_id": ("assets", ("title",))})
    with pytest.raises(SeedRefused, match="in a cycle: assets -> users -> assets"):
        order([assets, loop])


def test_a_csv_reference_to_a_several_column_key_is_given_as_a_slash_b() -> None:
    owners = LiveTable(columns=_cols(id="int4", org="text", login="text"), primary_key=("id",))
    owners_live = _live(owners, [{"id": 3, "org": "acme", "login": "zoë"}])
    owner_seed = _seed([], table="owners", key=("org", "login"))
    parent = plan_table(owner_seed, owners_live, {"owners": owners_live}, {}, set())
    seed = SeedTable(
        table="assets",
        file="assets.csv",
        key=("owner_id", "title"),
        mode="enforce",
        references={"owner_id": ("owners", ("org", "login"))},
        rows=[SeedRow(1, {"owner_id": "acme/zoë", "title": "logo"})],
        from_text=True,
    )
    assets = _live(ASSETS, [{"id": 9, "owner_id": 3, "title": "logo"}])
    plan = plan_table(seed, assets, {"owners": owners_live}, {"owners": parent}, set())
    assert _actions(plan) == [("row", "assets(acme/zoë, logo)", "unchanged", [])]
