"""What Keycloak 26 does with what older exports hold: the realm as Keycloak will keep it.

An export written by Keycloak 18-25 holds fields that Keycloak 26 drops, renames or fills in
its own way. Refusing them would refuse files Keycloak itself imports; comparing them as
written would "update" them on every run and never converge. Instead each rule here rewrites
the desired realm the way Keycloak 26 keeps it, and says so once per cause (a warning naming
the JSON path and what Keycloak does). `conceptor realm upgrade` writes the same rewrite back
to the file, after which it has nothing to warn about.
"""

from __future__ import annotations

from typing import Any

import orjson

from conceptor.realmfile.notes import Notebook
from conceptor.realmfile.user_profile import major_version, undeclared_attributes

# Clients Keycloak makes in every realm; `<realm>-realm` in master too.
BUILT_IN_CLIENTS = frozenset(
    {"account", "account-console", "admin-cli", "broker", "realm-management",
     "security-admin-console"}
)  # fmt: skip
# Built-in clients whose full scope Keycloak 26's import of an older export switches on.
_FULL_SCOPE_ON_IMPORT = frozenset({"admin-cli", "security-admin-console"})
_TERMS = "TERMS_AND_CONDITIONS"
# OTP applications as Keycloak 18 exported them, and the message keys Keycloak 26 keeps.
_OTP_KEYS = {
    "FreeOTP": "totpAppFreeOTPName",
    "Google Authenticator": "totpAppGoogleName",
    "Microsoft Authenticator": "totpAppMicrosoftAuthenticatorName",
}
# Built-in flows Keycloak no longer has: its import of an older export leaves them out.
_GONE_FLOWS = frozenset({"http challenge", "Authentication Options"})
# An execution Keycloak 24+ removes from every flow (the user profile does its work).
_GONE_AUTHENTICATOR = "registration-profile-action"
# Clients Keycloak marks `realm_client` in every realm.
_REALM_CLIENTS = frozenset({"broker", "realm-management"})


def adapt(rep: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The realm representation as Keycloak 26 keeps it, and one warning per cause."""
    out = orjson.loads(orjson.dumps(rep))  # a deep copy of a JSON document, 10x deepcopy's speed
    notes = Notebook()
    dropped = undeclared_attributes(out)  # before the rules below rewrite what it reads
    _realm_attributes(out, notes)
    _otp_applications(out, notes)
    _flows(out, notes)
    _identity_providers(out, notes)
    _required_actions(out, notes)
    _clients(out, notes)
    _components(out, notes)
    _users(out, dropped, notes)
    return out, notes.messages()


def _realm_attributes(rep: dict[str, Any], notes: Notebook) -> None:
    attributes = rep.get("attributes")
    if isinstance(attributes, dict) and "userProfileEnabled" in attributes:
        del attributes["userProfileEnabled"]
        notes.add(
            "attributes.userProfileEnabled",
            "dropped by Keycloak 24+: the declarative user profile is always on",
        )


def _otp_applications(rep: dict[str, Any], notes: Notebook) -> None:
    apps = rep.get("otpSupportedApplications")
    if not isinstance(apps, list) or not any(a in _OTP_KEYS for a in apps):
        return
    rep["otpSupportedApplications"] = [_OTP_KEYS.get(a, a) for a in apps]
    for app in apps:
        if app in _OTP_KEYS:
            notes.add(
                "otpSupportedApplications",
                "display names are kept by Keycloak 19+ as message keys "
                f"({', '.join(f'{k} → {v}' for k, v in _OTP_KEYS.items())})",
                noun="applications",
                name=app,
            )


def _flows(rep: dict[str, Any], notes: Notebook) -> None:
    flows = rep.get("authenticationFlows")
    if not isinstance(flows, list):
        return
    kept = []
    for flow in flows:
        alias = str(flow.get("alias"))
        if alias in _GONE_FLOWS and flow.get("builtIn"):
            notes.add(
                "authenticationFlows[*]",
                "built-in flows Keycloak 26 no longer has: its import leaves them out",
                noun="flows",
                name=alias,
            )
            continue
        executions = flow.get("authenticationExecutions")
        if isinstance(executions, list):
            gone = [e for e in executions if e.get("authenticator") == _GONE_AUTHENTICATOR]
            if gone:
                flow["authenticationExecutions"] = [e for e in executions if e not in gone]
                notes.add(
                    f"authenticationFlows[*].authenticationExecutions[authenticator="
                    f"{_GONE_AUTHENTICATOR}]",
                    "removed by Keycloak 24+ (the user profile validates registration)",
                    noun="flows",
                    name=alias,
                )
        kept.append(flow)
    rep["authenticationFlows"] = kept


def _identity_providers(rep: dict[str, Any], notes: Notebook) -> None:
    for provider in rep.get("identityProviders") or []:
        alias = str(provider.get("alias"))
        if "updateProfileFirstLoginMode" in provider:
            del provider["updateProfileFirstLoginMode"]
            notes.add(
                "identityProviders[*].updateProfileFirstLoginMode",
                "dropped by Keycloak 24+: the first-broker-login flow decides",
                noun="identity providers",
                name=alias,
            )
        config = provider.get("config")
        if isinstance(config, dict) and "hideOnLoginPage" in config:
            hidden = str(config.pop("hideOnLoginPage")).lower() == "true"
            provider.setdefault("hideOnLogin", hidden)
            notes.add(
                "identityProviders[*].config.hideOnLoginPage",
                "moved by Keycloak 26 to identityProviders[*].hideOnLogin",
                noun="identity providers",
                name=alias,
            )


def _required_actions(rep: dict[str, Any], notes: Notebook) -> None:
    actions = rep.get("requiredActions") or []
    has_new = any(a.get("alias") == _TERMS for a in actions)
    kept = []
    for action in actions:
        if action.get("alias") != "terms_and_conditions":
            kept.append(action)
            continue
        notes.add(
            "requiredActions[*].alias",
            f"`terms_and_conditions` is named {_TERMS} by Keycloak 22+ (alias and providerId)",
            noun="required actions",
            name="terms_and_conditions",
        )
        if has_new:
            continue  # the file has both: the new one counts, as in Keycloak
        kept.append({**action, "alias": _TERMS, "providerId": _TERMS})
    if "requiredActions" in rep:
        rep["requiredActions"] = kept


def _clients(rep: dict[str, Any], notes: Notebook) -> None:
    master = rep.get("realm") == "master"
    major = major_version(rep)
    for client in rep.get("clients") or []:
        cid = str(client.get("clientId"))
        older = major is not None and major < 26
        if older and cid in _FULL_SCOPE_ON_IMPORT and client.get("fullScopeAllowed") is False:
            client["fullScopeAllowed"] = True
            notes.add(
                "clients[*].fullScopeAllowed",
                "set to true by Keycloak 26's import of an export of Keycloak < 26 (its "
                "migration of the built-in admin clients)",
                noun="built-in clients",
                name=cid,
            )
        if client.get("publicClient") and client.get("secret") not in (None, ""):
            del client["secret"]
            notes.add(
                "clients[*].secret",
                "ignored by Keycloak: a public client has no secret",
                noun="public clients",
                name=cid,
            )
        attributes = client.get("attributes")
        if isinstance(attributes, dict) and "realm_client" in attributes:
            value = str(attributes.pop("realm_client")).lower()
            manages = cid in _REALM_CLIENTS or (master and cid.endswith("-realm"))
            if (value == "true") != manages:
                notes.add(
                    "clients[*].attributes.realm_client",
                    "set by Keycloak itself: it marks a realm's own clients (broker, "
                    "realm-management, and <realm>-realm in master)",
                    noun="clients",
                    name=cid,
                )


def _components(rep: dict[str, Any], notes: Notebook) -> None:
    storage = (rep.get("components") or {}).get("org.keycloak.storage.UserStorageProvider") or []
    for component in storage:
        config = component.get("config")
        if isinstance(config, dict) and config.get("useTruststoreSpi") == ["ldapsOnly"]:
            config["useTruststoreSpi"] = ["always"]
            notes.add(
                "components.org.keycloak.storage.UserStorageProvider[*].config.useTruststoreSpi",
                "Keycloak 26 reads only `always` or `never`: it turns `ldapsOnly` into `always`",
                noun="user storage providers",
                name=str(component.get("name")),
            )


def _users(rep: dict[str, Any], dropped: set[str], notes: Notebook) -> None:
    for user in rep.get("users") or []:
        actions = user.get("requiredActions")
        if isinstance(actions, list) and "terms_and_conditions" in actions:
            user["requiredActions"] = [
                _TERMS if a == "terms_and_conditions" else a for a in actions
            ]
            notes.add(
                "users[*].requiredActions",
                f"`terms_and_conditions` is named {_TERMS} by Keycloak 22+",
                noun="users",
                name=str(user.get("username")),
            )
    if not rep.get("internationalizationEnabled"):
        _drop_locale(rep, notes)
    if not dropped:
        return
    for user in rep.get("users") or []:
        attributes = user.get("attributes")
        if not isinstance(attributes, dict):
            continue
        for name in sorted(set(attributes) & dropped):
            del attributes[name]
            notes.add(
                f"users[*].attributes.{name}",
                "the realm's user profile does not declare this attribute and Keycloak 24+ "
                "drops undeclared attributes: declare it in the user profile "
                "(components.org.keycloak.userprofile.UserProfileProvider), or set its "
                "`unmanagedAttributePolicy`",
                noun="users",
                name=str(user.get("username")),
            )


def _drop_locale(rep: dict[str, Any], notes: Notebook) -> None:
    """A user's `locale` is kept only by a realm with internationalization on."""
    for user in rep.get("users") or []:
        attributes = user.get("attributes")
        if isinstance(attributes, dict) and "locale" in attributes:
            del attributes["locale"]
            notes.add(
                "users[*].attributes.locale",
                "dropped by Keycloak: the realm does not switch internationalization on "
                "(`internationalizationEnabled`)",
                noun="users",
                name=str(user.get("username")),
            )
