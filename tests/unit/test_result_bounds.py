"""A step's result stays the same size whatever the size of its target: bounded diffs."""

from __future__ import annotations

from conceptor.client.diffs import read_diff
from conceptor.client.plan import plan_from_result
from conceptor.contracts import (
    RESULT_CHANGES,
    Change,
    ChangeAction,
    Diff,
    ProvisionResult,
    StepResult,
)
from conceptor.workflows.drift import lost_everything


def realm_diff(users: int, *, created: int = 0, drift: int = 0) -> Diff:
    """A realm diff: `created` users to create, `drift` drifted, the rest unchanged."""
    changes = [Change(kind="client", name="api", action="unchanged")]
    for i in range(users):
        action: ChangeAction = "create" if i < created else "unchanged"
        changes.append(Change(kind="user", name=f"user-{i:05d}", action=action))
    changes += [Change(kind="table", name=f"t{i}", action="drift") for i in range(drift)]
    return Diff(target="realm big", changes=changes, desired_digest="d" * 16, live_digest="l" * 16)


def test_result_lists_at_most_the_bound_writes_and_drift_first() -> None:
    """3 000 unchanged, 70 creates and 2 drifted: 50 listed (all creates), the rest counted."""
    diff = realm_diff(3070, created=70, drift=2)
    result = StepResult.from_diff(diff, ref="ab" * 16)
    assert result.diff is not None
    assert len(result.diff.changes) == RESULT_CHANGES == 50
    assert [c.name for c in result.diff.changes] == [f"user-{i:05d}" for i in range(50)]
    assert result.diff.left_out == {"create": 20, "drift": 2, "unchanged": 3001}
    assert (
        result.counts
        == diff.counts()
        == {
            "created": 70,
            "updated": 0,
            "deleted": 0,
            "unchanged": 3001,
            "drift": 2,
        }
    )
    assert result.diff.counts() == diff.counts()
    assert result.outcome == "updated"
    assert len(result.changed) == 50 and result.changed[0] == "+user:user-00000"
    assert result.diff.ref == "ab" * 16
    assert (result.diff.desired_digest, result.diff.live_digest) == ("d" * 16, "l" * 16)
    assert not result.diff.is_empty and not result.diff.complete


def test_writes_left_out_still_count_as_pending() -> None:
    """A bounded diff whose listed changes are all drift still has writes to make."""
    bounded = Diff(target="t", changes=[], left_out={"update": 3})
    assert not bounded.is_empty
    assert Diff(target="t", left_out={"unchanged": 9, "drift": 2}).is_empty


def test_small_diff_is_carried_whole_in_its_order() -> None:
    """At or under the bound, the result's diff is the diff itself."""
    diff = realm_diff(RESULT_CHANGES - 2, created=3, drift=1)
    assert len(diff.changes) == RESULT_CHANGES
    result = StepResult.from_diff(diff)
    assert result.diff == diff.model_copy(update={"ref": None})
    assert result.diff is not None and result.diff.complete


def test_result_size_is_the_same_for_500_and_50_000_users() -> None:
    """The serialized result does not grow with the realm (same bytes, but for the digits)."""
    sizes = {
        users: len(StepResult.from_diff(realm_diff(users), ref="0" * 32).model_dump_json())
        for users in (500, 50_000)
    }
    assert sizes[500] <= 7_000
    # Only two numbers grow: the unchanged count (501 -> 50001) and those left out (451 -> 49951).
    assert sizes[50_000] - sizes[500] == 4


def test_first_import_of_a_large_realm_is_still_data_loss() -> None:
    """Every object to create, most of them left out of the list: still 'lost everything'."""
    diff = realm_diff(5000, created=5000)
    diff.changes[0] = Change(kind="client", name="api", action="create")
    result = StepResult.from_diff(diff)
    assert result.diff is not None and result.diff.left_out == {"create": 5001 - RESULT_CHANGES}
    assert lost_everything(result)
    assert result.outcome == "created"
    assert not lost_everything(StepResult.from_diff(realm_diff(5000, created=4999)))


def test_plan_counts_what_the_bounded_results_leave_out() -> None:
    """A plan of a bounded result: the listed rows, the counts, and the ref of the full diff."""
    result = ProvisionResult(
        steps={"import_realm": StepResult.from_diff(realm_diff(900, created=80), ref="c" * 32)},
        duration_seconds=1.0,
    )
    plan = plan_from_result(result, workflow_id="p", run_id=None, created_at=None)
    assert len(plan.changes) == 50 and plan.has_changes
    assert plan.left_out == 30
    assert plan.unchanged == 821
    assert plan.refs == {"import_realm": "c" * 32}
    assert plan.digests["import_realm"].desired_digest == "d" * 16


class _Store:
    """A DiffStore stand-in holding one document (the Redis round trip is an integration test)."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def get(self, ref: str) -> str | None:
        return self.text if ref == "e" * 32 else None


async def test_read_diff_changes_only_counts_the_unchanged() -> None:
    diff = realm_diff(10, created=2)
    store = _Store(diff.model_dump_json())
    full = await read_diff(store, "e" * 32)  # type: ignore[arg-type]
    assert full == diff
    changes = await read_diff(store, "e" * 32, changes_only=True)  # type: ignore[arg-type]
    assert changes is not None
    assert [c.name for c in changes.changes] == ["user-00000", "user-00001"]
    assert changes.left_out == {"unchanged": 9}
    assert changes.counts() == diff.counts()
    assert await read_diff(store, "f" * 32) is None  # type: ignore[arg-type]
