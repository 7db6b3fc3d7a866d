"""The reconcile model's pure parts: field comparison, diffs, results, verification."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from conceptor.activities.reconcile import (
    NOT_CONVERGED,
    STALE_PLAN,
    UNMANAGED,
    change_for,
    check_plan,
    differing_fields,
    digest,
    merge,
    refuse,
    verify,
)
from conceptor.contracts import Change, Diff, PlanDigests, ReconcileInput, StepResult


def test_extra_live_fields_do_not_count_as_differences() -> None:
    assert differing_fields({"a": 1}, {"a": 1, "id": "x", "b": 2}) == []


def test_nested_differences_are_named_by_path() -> None:
    want = {"attributes": {"x": "1", "y": "2"}, "enabled": True}
    have = {"attributes": {"x": "1", "y": "3"}, "enabled": False}
    assert differing_fields(want, have) == ["attributes.y", "enabled"]


def test_keycloak_normalisation_compares_equal() -> None:
    # strings for booleans and numbers, single values as one-element lists
    assert differing_fields({"a": True, "n": 25}, {"a": "true", "n": "25"}) == []
    assert differing_fields({"attributes": {"k": "v"}}, {"attributes": {"k": ["v"]}}) == []
    assert differing_fields({"attributes": {"k": ["v"]}}, {"attributes": {"k": "v"}}) == []


def test_scalar_lists_compare_as_sets() -> None:
    assert differing_fields({"u": ["b", "a"]}, {"u": ["a", "b"]}) == []
    assert differing_fields({"u": ["a", "c"]}, {"u": ["a", "b"]}) == ["u"]


def test_object_lists_match_by_identity_key() -> None:
    want = {"m": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]}
    have = {"m": [{"name": "y", "v": 2, "id": "1"}, {"name": "x", "v": 9}]}
    keys = {"m": "name"}.get
    assert differing_fields(want, have, keys=keys) == ["m[name=x].v"]
    assert differing_fields({"m": [{"name": "z"}]}, have, keys=keys) == ["m[name=z]"]


def test_object_lists_without_key_compare_as_multisets() -> None:
    assert differing_fields([{"a": 1}, {"a": 2}], [{"a": 2}, {"a": 1}]) == []
    assert differing_fields([{"a": 1}, {"a": 1}], [{"a": 1}, {"a": 2}]) == ["."]
    assert differing_fields([{"a": 1}, {"a": 3}], [{"a": 1}, {"a": 2}]) != []


def test_absent_empty_values_mean_nothing() -> None:
    assert differing_fields({"a": [], "b": {}, "c": None}, {}) == []
    assert differing_fields({"a": ["x"]}, {}) == ["a"]


def test_change_for_create_update_unchanged() -> None:
    assert change_for("client", "c", {"a": 1}, None).action == "create"
    updated = change_for("client", "c", {"a": 1}, {"a": 2})
    assert (updated.action, updated.fields) == ("update", ["a"])
    assert change_for("client", "c", {"a": 1}, {"a": 1}).action == "unchanged"


def test_diff_counts_and_step_result() -> None:
    diff = Diff(
        target="realm t",
        changes=[
            Change(kind="client", name="a", action="create"),
            Change(kind="client", name="b", action="update", fields=["x"]),
            Change(kind="role", name="r", action="unchanged"),
            Change(kind="table", name="t", action="drift"),
        ],
    )
    assert [c.name for c in diff.pending] == ["a", "b"]
    assert diff.counts() == {"created": 1, "updated": 1, "deleted": 0, "unchanged": 1, "drift": 1}
    result = StepResult.from_diff(diff)
    assert result.outcome == "updated"
    assert result.changed == ["+client:a", "~client:b", "!table:t"]
    unchanged = StepResult.from_diff(Diff(target="t", changes=[diff.changes[2], diff.changes[3]]))
    assert unchanged.outcome == "unchanged"
    created = StepResult.from_diff(Diff(target="t", changes=[diff.changes[0]]))
    assert created.outcome == "created"


def test_verify_passes_on_empty_and_fails_naming_what_is_left() -> None:
    verify(Diff(target="t", changes=[Change(kind="k", name="n", action="unchanged")]))
    with pytest.raises(ApplicationError) as err:
        verify(
            Diff(
                target="realm t",
                changes=[Change(kind="k", name="n", action="update", fields=["f"])],
            )
        )
    assert err.value.type == NOT_CONVERGED and err.value.non_retryable
    assert "k:n (update: f)" in err.value.message


def test_refuse_is_non_retryable_and_names_the_path() -> None:
    err = refuse("clients[3].authorizationSettings.policies", "not managed", "remove it")
    assert err.type == UNMANAGED and err.non_retryable
    assert err.message.startswith("clients[3].authorizationSettings.policies: not managed")


def test_digest_is_stable_under_key_order_and_merge_combines() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    d = merge("all", [Diff(target="x", changes=[Change(kind="k", name="1", action="create")])])
    assert d.target == "all" and len(d.changes) == 1


def test_a_stale_plan_is_refused_and_a_current_one_passes() -> None:
    diff = Diff(target="realm t", desired_digest="d1", live_digest="l1")
    check_plan(diff, None)
    check_plan(diff, ReconcileInput())
    check_plan(diff, ReconcileInput(expected=PlanDigests(desired_digest="d1", live_digest="l1")))
    with pytest.raises(ApplicationError) as err:
        check_plan(
            diff, ReconcileInput(expected=PlanDigests(desired_digest="d1", live_digest="l0"))
        )
    assert err.value.type == STALE_PLAN and err.value.non_retryable
    assert "the live state changed" in err.value.message, err.value.message
