"""References between elements (role grants, composites, group paths, scopes) that lead nowhere."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from conceptor.activities.realm.items import Item, Ref, ref_label
from conceptor.activities.reconcile import refuse

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
    """Refusals for references to elements neither the file nor the live realm has."""
    out: list[ApplicationError] = []
    for item in desired.values():
        for field, refs in sorted(item.members.items()):
            for ref in sorted(refs):
                key = target_of(ref)
                if key not in desired and key not in live:
                    out.append(
                        refuse(
                            f"{item.source}.{field}",
                            f"{item.kind} {item.name!r} refers to {key[0]} {ref_label(ref)!r}, "
                            "which is neither in the file nor in the live realm",
                            f"add {key[0]} {ref_label(ref)!r} to the file, or remove the reference",
                        )
                    )
    return out
