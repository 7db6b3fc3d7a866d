"""The pure comparison of a desired realm with the live one: a typed `Diff` and what is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from temporalio.exceptions import ApplicationError

from conceptor.activities.realm.items import MASK, ORDER, Item, ref_label
from conceptor.activities.reconcile import differing_fields, refuse
from conceptor.contracts import Change, ChangeAction, Diff

Items = dict[tuple[str, str], Item]


@dataclass
class RealmDiff:
    """The diff, plus the refusals that must stop any write (unmanaged elements that differ)."""

    diff: Diff
    refusals: list[ApplicationError] = field(default_factory=list)


def unmask(want: Any, have: Any) -> Any:
    """`want` where either side hides a value (`**********`) taken from `have`: a hidden secret
    cannot be compared."""
    if have == MASK or want == MASK:
        return have
    if isinstance(want, dict) and isinstance(have, dict):
        return {k: unmask(v, have[k]) if k in have else v for k, v in want.items()}
    masked = isinstance(want, list) and isinstance(have, list) and MASK in have + want
    if masked and len(want) == len(have):
        return [unmask(w, h) for w, h in zip(want, have, strict=True)]
    return want


def fields_of(want: Item, have: Item) -> list[str]:
    """JSON paths of what differs: body fields, and members the live element lacks."""
    fields = differing_fields(unmask(want.body, have.body), have.body)
    for name, refs in sorted(want.members.items()):
        lacking = refs - have.members.get(name, frozenset())
        fields.extend(f"{name}[{ref_label(r)}]" for r in sorted(lacking))
    return fields


def compare(
    target: str,
    desired: Items,
    live: Items | None,
    *,
    deletable: frozenset[str] = frozenset(),
    owned: dict[str, set[str]] | None = None,
    live_digest: bool = True,
) -> RealmDiff:
    """Per desired element: create, update (fields) or unchanged; owned leftovers: delete.

    `live_digest=False` leaves the live state's digest out, for a read that only verifies.
    """
    changes: list[Change] = []
    refusals: list[ApplicationError] = []
    for key in sorted(desired, key=lambda k: (ORDER[k[0]], k[1])):
        want = desired[key]
        have = None if live is None else live.get(key)
        if have is None:
            # Built without validation: every field is known good, and a realm has thousands.
            change = Change.model_construct(
                kind=want.kind, name=want.name, action="create", fields=[], source=want.source
            )
        else:
            fields = fields_of(want, have)
            action: ChangeAction = "update" if fields else "unchanged"
            change = Change.model_construct(
                kind=want.kind, name=want.name, action=action, fields=fields, source=want.source
            )
        if not want.managed and live is not None and change.action != "unchanged":
            what = (
                "absent from" if have is None else f"different in ({', '.join(change.fields[:5])})"
            )
            refusals.append(
                refuse(
                    want.source,
                    f"{want.kind} {want.name!r} is {what} the live realm, and provisioning only "
                    "compares this kind of element",
                    "make the change in the admin console (or export the realm again), or "
                    "create the realm anew from the file",
                )
            )
        changes.append(change)
    for kind, names in sorted((owned or {}).items(), key=lambda kv: ORDER[kv[0]]):
        if kind not in deletable or live is None:
            continue
        for name in sorted(names):
            if (kind, name) not in desired and (kind, name) in live:
                changes.append(Change(kind=kind, name=name, action="delete"))
    return RealmDiff(
        Diff(
            target=target,
            changes=changes,
            desired_digest=items_digest(desired.values()),
            live_digest=items_digest((live or {}).values()) if live_digest else "",
        ),
        refusals,
    )


def items_digest(items: Iterable[Item]) -> str:
    """A short hash of a set of elements, whatever their order."""
    return hashlib.sha256(b"\n".join(sorted(i.canonical for i in items))).hexdigest()[:16]
