"""The subset comparison of a desired realm element with a live one (see `realm.diff`)."""

from __future__ import annotations

from typing import Any

from conceptor.activities.reconcile import differing_fields


def matches(want: Any, have: Any) -> bool:
    """True if everything `want` says is also so in `have` (extra server fields are fine)."""
    return not differing_fields(want, have)
