"""Full diffs by reference, for the CLI and the API: what a step kept outside the history."""

from __future__ import annotations

from conceptor.contracts import Diff
from conceptor.platform.diff_store import DiffStore


async def read_diff(store: DiffStore, ref: str, *, changes_only: bool = False) -> Diff | None:
    """The full diff a step's result names by `diff.ref`; None if unknown or expired.

    `changes_only` leaves the unchanged objects out (counting them in `left_out`): what a
    person reads, where a realm of 50 000 users has few changes among many objects.
    """
    text = await store.get(ref)
    if text is None:
        return None
    diff = Diff.model_validate_json(text)
    if not changes_only:
        return diff
    unchanged = sum(c.action == "unchanged" for c in diff.changes)
    left_out = {**diff.left_out, "unchanged": diff.left_out.get("unchanged", 0) + unchanged}
    changes = [c for c in diff.changes if c.action != "unchanged"]
    return diff.model_copy(update={"changes": changes, "left_out": left_out, "ref": ref})
