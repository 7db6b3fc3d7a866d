"""`conceptor snapshot save|restore|list|delete|export|import`: each runs a snapshot workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from conceptor.snapshot_contracts import check_name

snapshot_app = typer.Typer(
    help="Snapshots of the whole environment: every declared database, bucket and realm.",
    no_args_is_help=True,
)
T = TypeVar("T")


def _name(name: str) -> str:
    try:
        return check_name(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def _run(work: Callable[[Any], Awaitable[T]]) -> T:
    """Connect, run `work(client)`; a failed workflow prints its cause and exits 1."""
    from conceptor.client.snapshots import SnapshotFailed
    from conceptor.platform.settings import get_settings
    from conceptor.platform.temporal import connect

    async def go() -> T:
        client = await connect(get_settings())
        return await work(client)

    try:
        return asyncio.run(go())
    except SnapshotFailed as exc:
        typer.echo(f"snapshot: {exc}", err=True)
        raise typer.Exit(1) from None
    except RuntimeError as exc:  # Temporal unreachable
        typer.echo(f"snapshot: {exc}", err=True)
        raise typer.Exit(1) from None


@snapshot_app.command("save")
def save_command(name: str = typer.Argument(..., help="The snapshot's name.")) -> None:
    """Save every declared database, bucket and realm as snapshot NAME."""
    from conceptor.client import snapshots

    m = _run(lambda c: snapshots.save(c, _name(name)))
    typer.echo(f"saved snapshot {m.name} in {m.seconds:.1f} s ({_mib(m.bytes())})")
    for d in m.databases:
        typer.echo(f"  postgres  {d.database}: {_mib(d.bytes)}, {len(d.migrations)} migrations")
    for b in m.buckets:
        typer.echo(f"  minio     {b.bucket}: {b.objects} objects, {_mib(b.bytes)}")
    for r in m.realms:
        typer.echo(f"  keycloak  {r.realm}: {r.users} users")


@snapshot_app.command("restore")
def restore_command(name: str = typer.Argument(..., help="The snapshot to restore.")) -> None:
    """Make every service equal to snapshot NAME, then apply migrations it predates."""
    from conceptor.client import snapshots

    r = _run(lambda c: snapshots.restore(c, _name(name)))
    typer.echo(f"restored snapshot {r.name} in {r.seconds:.1f} s")
    for part in r.restored:
        typer.echo(f"  {part.part}: {part.detail} ({part.seconds:.1f} s)")
    for db, names in r.migrations_applied.items():
        typer.echo(f"  migrations applied after it on {db}: {', '.join(names)}")
    if not r.migrations_applied:
        typer.echo("  no migration was pending")


@snapshot_app.command("list")
def list_command() -> None:
    """The snapshots on this machine, oldest first."""
    from conceptor.client import snapshots

    listed = _run(snapshots.list_snapshots)
    if not listed.snapshots:
        typer.echo("no snapshots (save one: conceptor snapshot save NAME)")
    for m in listed.snapshots:
        parts = f"{len(m.databases)} db, {len(m.buckets)} buckets, {len(m.realms)} realms"
        commit = (m.git_commit or "no commit")[:10]
        typer.echo(
            f"{m.name:<24} {m.created_at:%Y-%m-%d %H:%M} {_mib(m.bytes()):>12}  {parts}  {commit}"
        )


@snapshot_app.command("delete")
def delete_command(name: str = typer.Argument(..., help="The snapshot to delete.")) -> None:
    """Delete snapshot NAME: its database copies, objects and files."""
    from conceptor.client import snapshots

    freed = _run(lambda c: snapshots.delete(c, _name(name)))
    typer.echo(f"deleted snapshot {name} ({_mib(freed)} freed)")


@snapshot_app.command("export")
def export_command(
    name: str = typer.Argument(..., help="The snapshot to export."),
    file: Path = typer.Argument(..., help="The file to write (a tar with checksums)."),
) -> None:
    """Write snapshot NAME to FILE, for a teammate's `conceptor snapshot import`."""
    from conceptor.client import snapshots

    r = _run(lambda c: snapshots.export(c, _name(name), file))
    typer.echo(f"exported snapshot {r.name} to {r.file} ({_mib(r.bytes)}, sha256 {r.sha256})")


@snapshot_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="A file written by `conceptor snapshot export`."),
    name: str | None = typer.Option(None, "--name", help="Import under this name."),
) -> None:
    """Check FILE's checksums, then make it a snapshot of this machine (restore it next)."""
    from conceptor.client import snapshots

    if not file.is_file():
        raise typer.BadParameter(f"{file}: no such file", param_hint="FILE")
    r = _run(lambda c: snapshots.import_file(c, file, None if name is None else _name(name)))
    typer.echo(f"imported snapshot {r.name} from {r.file} (sha256 {r.sha256})")
