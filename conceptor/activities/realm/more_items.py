"""Items of a realm's identity providers, flows, required actions, components, scope mappings."""

from __future__ import annotations

from typing import Any

from conceptor.activities.realm.items import Item, Ref
from conceptor.activities.realm.strip import strip

# Key providers' material and use: Keycloak's partial export leaves them out (only its full
# export, `kc.sh export`, has them), so they cannot be compared.
_KEY_MATERIAL = frozenset({"privateKey", "certificate", "secret", "kid", "keyUse"})


def _component(component: dict[str, Any]) -> dict[str, Any]:
    """A component without the key material Keycloak never shows (not comparable)."""
    body: dict[str, Any] = strip(component)
    config = body.get("config")
    if isinstance(config, dict):
        body["config"] = {k: v for k, v in config.items() if k not in _KEY_MATERIAL}
    subs = body.get("subComponents") or {}
    body["subComponents"] = {t: [_component(c) for c in cs] for t, cs in subs.items()}
    return body


def more_items(rep: dict[str, Any], add: Any) -> None:
    """Identity providers, flows, configs, required actions, components, scope mappings."""
    keyed = (
        ("identityProviders", "identity-provider", "alias"),
        ("authenticationFlows", "authentication-flow", "alias"),
        ("authenticatorConfig", "authenticator-config", "alias"),
        ("requiredActions", "required-action", "alias"),
    )
    for key, kind, ident in keyed:
        for i, element in enumerate(rep.get(key, [])):
            item = Item(
                kind,
                str(element.get(ident)),
                strip(element),
                source=f"{key}[{i}]",
                live_id=element.get("id"),
            )
            add(item)
    for i, mapper in enumerate(rep.get("identityProviderMappers", [])):
        name = f"{mapper.get('identityProviderAlias')}/{mapper.get('name')}"
        add(
            Item(
                "identity-provider-mapper",
                name,
                strip(mapper),
                source=f"identityProviderMappers[{i}]",
                live_id=mapper.get("id"),
                parent=mapper.get("identityProviderAlias"),
            )
        )
    for provider_type, components in (rep.get("components") or {}).items():
        for i, component in enumerate(components):
            name = f"{provider_type}/{component.get('name')}"
            if component.get("subType"):
                name += f" ({component['subType']})"
            add(
                Item(
                    "component",
                    name,
                    _component(component),
                    source=f"components.{provider_type}[{i}]",
                    live_id=component.get("id"),
                    parent=provider_type,
                    extra={"raw": component},  # key material included: written on creation
                )
            )
    _scope_mappings(rep, add)


def _scope_mappings(rep: dict[str, Any], add: Any) -> None:
    """Roles a client or client scope may put in tokens: one item per client or scope."""
    found: dict[str, tuple[str, set[Ref]]] = {}

    def note(entry: dict[str, Any], refs: set[Ref], src: str) -> None:
        target = (
            f"client:{entry['client']}"
            if entry.get("client")
            else f"scope:{entry.get('clientScope')}"
        )
        found.setdefault(target, (src, set()))[1].update(refs)

    for i, entry in enumerate(rep.get("scopeMappings") or []):
        note(entry, {("realm", r) for r in entry.get("roles", [])}, f"scopeMappings[{i}]")
    for owner, entries in (rep.get("clientScopeMappings") or {}).items():
        for j, entry in enumerate(entries):
            refs: set[Ref] = {("client", owner, r) for r in entry.get("roles", [])}
            note(entry, refs, f"clientScopeMappings.{owner}[{j}]")
    for target, (src, refs) in found.items():
        add(Item("scope-mapping", target, {}, {"roles": frozenset(refs)}, source=src))
