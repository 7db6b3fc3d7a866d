"""References between elements (role grants, composites, group paths, scopes) that lead nowhere."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from conceptor.activities.realm.items import Item, Ref, ref_label
from conceptor.activities.reconcile import refuse
from conceptor.realmfile.notes import some_names

Items = dict[tuple[str, str], Item]


def target_of(ref: Ref) -> tuple[str, str]:
    """The element key a reference points at."""
    if ref[0] == "realm":
        return ("role", ref[1])
    if ref[0] == "client":
        return ("client-role", f"{ref[1]}/{ref[2]}")
    if ref[0] == "group":
        return ("group", ref[1])
    return ("client-scope", ref[1])


def dangling(desired: Items, live: Items) -> list[ApplicationError]:
    """Refusals for references to elements neither the file nor the live realm has: one per
    missing element and kind of referrer, however many elements refer to it."""
    found: dict[tuple[str, str, str, tuple[str, str]], list[Item]] = {}
    for item in desired.values():
        for field, refs in sorted(item.members.items()):
            for ref in sorted(refs):
                key = target_of(ref)
                if key not in desired and key not in live:
                    found.setdefault((item.kind, field, ref_label(ref), key), []).append(item)
    out: list[ApplicationError] = []
    for (kind, field, label, key), items in found.items():
        if len(items) == 1:
            where = f"{items[0].source}.{field}"
            who = f"{kind} {items[0].name!r} refers"
        else:
            where = f"{_every(items[0].source)}.{field}"
            names = some_names(item.name for item in items)
            who = f"{len(items)} elements of kind {kind} ({names}) refer"
        out.append(
            refuse(
                where,
                f"{who} to {key[0]} {label!r}, which is neither in the file nor in the live realm",
                f"add {key[0]} {label!r} to the file, or remove the reference",
            )
        )
    return out


def _every(source: str) -> str:
    """`users[3]` → `users[*]`: the path of every element of a list."""
    head, _, _ = source.rpartition("[")
    return f"{head}[*]" if head else source
