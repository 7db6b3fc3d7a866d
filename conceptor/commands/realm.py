"""`conceptor realm upgrade FILE`: an older realm export in the shapes Keycloak 26 keeps."""

from __future__ import annotations

import asyncio
import difflib
import json
from pathlib import Path
from typing import Any

import httpx
import typer

from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.settings import get_settings
from conceptor.realmfile.compat import adapt
from conceptor.realmfile.notes import Notebook
from conceptor.realmfile.scopes import BUILT_IN_SCOPES, add_definitions, to_copy

realm_app = typer.Typer(help="Realm files: upgrade older Keycloak exports.", no_args_is_help=True)
# Server-assigned fields left out of built-in scopes copied from Keycloak.
_SERVER_IDS = frozenset({"id", "containerId"})


def _text(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, ensure_ascii=False) + "\n"


def _without_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k not in _SERVER_IDS}
    if isinstance(node, list):
        return [_without_ids(v) for v in node]
    return node


async def _builtin_scopes() -> dict[str, dict[str, Any]]:
    """The built-in client scopes as the stack's Keycloak defines them (realm master)."""
    settings = get_settings()
    async with httpx.AsyncClient(timeout=30) as http:
        token = await admin_token(settings, http)
        resp = await http.get(
            f"{settings.keycloak_url}/admin/realms/master/client-scopes",
            headers={"Authorization": f"Bearer {token}"},
        )
        resp.raise_for_status()
    return {s["name"]: _without_ids(s) for s in resp.json() if s.get("name") in BUILT_IN_SCOPES}


def _load(path: Path) -> dict[str, Any]:
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise typer.BadParameter(f"{path} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        msg = f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise typer.BadParameter(msg) from None
    if not isinstance(rep, dict) or not isinstance(rep.get("realm"), str):
        raise typer.BadParameter(f"{path} does not hold a realm (an object with `realm`)")
    return rep


@realm_app.command("upgrade")
def upgrade_command(
    file: Path = typer.Argument(..., help="The realm file (a Keycloak export, any version)."),
    write: bool = typer.Option(False, "--write", help="Save the upgraded file in place."),
) -> None:
    """Show as a diff what Keycloak 26 would drop, rename or set itself in FILE; --write saves it.

    Exit 0 when the file is already in today's shapes, 2 when it would change (and was not
    written), 1 when a built-in scope it needs cannot be read from the stack's Keycloak.
    """
    original = _load(file)
    upgraded, warnings = adapt(original)
    if to_copy(upgraded):
        try:
            definitions = asyncio.run(_builtin_scopes())
        except (httpx.HTTPError, RuntimeError) as exc:
            names = ", ".join(to_copy(upgraded))
            typer.echo(
                f"{file}: refers to Keycloak's built-in client scopes {names} without defining "
                f"them; their definitions come from the stack's Keycloak, which did not answer "
                f"({exc}): start it (`make up`) and run this again",
                err=True,
            )
            raise typer.Exit(1) from None
        notes = Notebook()
        upgraded = add_definitions(upgraded, definitions, notes)
        warnings += notes.messages()
    before, after = _text(original), _text(upgraded)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if before == after:
        typer.echo(f"{file}: already in the shapes Keycloak 26 keeps; nothing to change")
        return
    diff = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{file} (as written)",
        tofile=f"{file} (upgraded)",
    )
    typer.echo("".join(diff), nl=False)
    if not write:
        typer.echo(f"{file}: not written (add --write to save it)", err=True)
        raise typer.Exit(2)
    file.write_text(after, encoding="utf-8")
    typer.echo(f"{file}: written ({len(warnings)} change(s) applied)", err=True)
