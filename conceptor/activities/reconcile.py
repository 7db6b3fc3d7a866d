"""The reconcile model's pure parts: compare desired with live, digest states, refuse, verify.

Every mutating provisioning step follows the same loop: read the desired state (files and
settings), read the live state, compute a `Diff` (a pure value: `contracts.Diff`), apply it
unless this is a plan, read the live state again and `verify` that nothing is left to do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from temporalio.exceptions import ApplicationError

from conceptor.contracts import Change, Diff, ReconcileInput
from conceptor.realmfile.notes import some_names

# The failure types a reconciling step raises; none of them is retried.
UNMANAGED = "Unmanaged"  # the desired state holds something the reconciler cannot manage
NOT_CONVERGED = "NotConverged"  # applied, yet the live state still differs
STALE_PLAN = "StalePlan"  # a plan's digests no longer match the files or the live state


def canonical(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace (what digests are taken of)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    """A short hash of a state, for telling whether it moved since a plan saw it."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:16]


def _scalar_equal(want: Any, have: Any) -> bool:
    if type(want) is type(have):
        return bool(want == have)
    # Servers store booleans and numbers as strings in places ("true" vs true, "25" vs 25),
    # and single values as one-element lists (Keycloak attributes).
    if isinstance(have, list) and len(have) == 1 and not isinstance(want, list | dict):
        return _scalar_equal(want, have[0])
    return str(want).lower() == str(have).lower()


def _holds(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """`have` holds every field of `want` with the same value and type (nested dicts alike;
    lists only when equal and free of objects). False says nothing: compare in full."""
    for key, value in want.items():
        if key not in have:
            return False
        found = have[key]
        if type(found) is not type(value):
            return False
        if isinstance(value, dict):
            if not _holds(found, value):
                return False
        elif value != found or (
            isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
        ):
            return False
    return True


def differing_fields(
    want: Any,
    have: Any,
    path: str = "",
    *,
    keys: Callable[[str], str | None] | None = None,
) -> list[str]:
    """JSON paths of what `want` says that `have` does not (extra fields in `have` are fine).

    Lists of scalars compare as sets (servers keep URIs, origins, scopes as sets); lists of
    objects match element by the identity field `keys(path)` names (e.g. "name"), or, without
    one, as a multiset of the objects' own comparisons.
    """
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [path or "."]
        if _holds(have, want):  # the common case, checked at C speed: nothing differs
            return []
        out: list[str] = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else key
            if key not in have:
                if value in (None, [], {}, ""):
                    continue  # "nothing" is what an absent field means too
                out.append(sub)
            else:
                out.extend(differing_fields(value, have[key], sub, keys=keys))
        return out
    if isinstance(want, list):
        if not isinstance(have, list):
            if len(want) == 1 and not isinstance(want[0], dict | list):
                return [] if _scalar_equal(want[0], have) else [path or "."]
            return [path or "."]
        if all(not isinstance(w, dict | list) for w in want):
            wanted = {canonical(w).strip('"').lower() for w in want}
            found = {
                canonical(h).strip('"').lower() for h in have if not isinstance(h, dict | list)
            }
            return [] if wanted == found else [path or "."]
        ident = keys(path) if keys else None
        if ident is not None:
            by_id = {h.get(ident): h for h in have if isinstance(h, dict)}
            out = []
            for w in want:
                wid = w.get(ident) if isinstance(w, dict) else None
                sub = f"{path}[{ident}={wid}]"
                if wid not in by_id:
                    out.append(sub)
                else:
                    out.extend(differing_fields(w, by_id[wid], sub, keys=keys))
            return out
        unmatched = list(have)
        for w in want:
            match = next(
                (h for h in unmatched if not differing_fields(w, h, path, keys=keys)), None
            )
            if match is None:
                return [path or "."]
            unmatched.remove(match)
        return []
    return [] if _scalar_equal(want, have) else [path or "."]


def change_for(
    kind: str,
    name: str,
    want: Any,
    have: Any | None,
    *,
    source: str = "",
    keys: Callable[[str], str | None] | None = None,
) -> Change:
    """`create` when there is no live object, `update` naming the fields, else `unchanged`."""
    if have is None:
        return Change(kind=kind, name=name, action="create", source=source)
    fields = differing_fields(want, have, keys=keys)
    action = "update" if fields else "unchanged"
    return Change(kind=kind, name=name, action=action, fields=fields, source=source)


def refuse(source: str, why: str, what_to_do: str) -> ApplicationError:
    """A non-retryable failure naming the JSON path of what cannot be managed, before writing."""
    msg = f"{source}: {why}; {what_to_do}"
    return ApplicationError(msg, type=UNMANAGED, non_retryable=True)


def verify(after: Diff) -> None:
    """After applying: the live state read again must leave nothing to do."""
    if after.is_empty:
        return
    msg = f"{after.target}: applied, but the live state still differs: {summary(after.pending)}"
    raise ApplicationError(msg, type=NOT_CONVERGED, non_retryable=True)


def summary(changes: list[Change], *, shown: int = 5) -> str:
    """Changes grouped by kind, action and fields: one object in full, many as a count and
    the first few names (a thousand users differing alike make one line)."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[Change]] = {}
    for change in changes:
        groups.setdefault((change.kind, change.action, tuple(change.fields)), []).append(change)
    parts = []
    for (kind, action, fields), members in groups.items():
        what = f"{action}{': ' + ', '.join(fields) if fields else ''}"
        if len(members) == 1:
            parts.append(f"{members[0].label} ({what})")
            continue
        names = some_names((c.name for c in members), shown)
        parts.append(f"{len(members)} of kind {kind} ({what}): {names}")
    return "; ".join(parts)


def merge(target: str, diffs: Iterable[Diff]) -> Diff:
    """One diff of several parts (e.g. every bucket), digests combined."""
    parts = list(diffs)
    return Diff(
        target=target,
        changes=[c for d in parts for c in d.changes],
        desired_digest=digest([d.desired_digest for d in parts]),
        live_digest=digest([d.live_digest for d in parts]),
    )


def check_plan(diff: Diff, data: ReconcileInput | None) -> None:
    """When applying a saved plan: refuse, before any write, if the state moved since it."""
    expected = data.expected if data else None
    if expected is None:
        return
    moved = expected.moved(diff)
    if moved:
        msg = (
            f"{diff.target}: the plan is stale: the {' and the '.join(moved)} changed since it "
            "was made; make a new plan (conceptor provision --plan) and apply that one"
        )
        raise ApplicationError(msg, type=STALE_PLAN, non_retryable=True)
