"""`conceptor provision --diff REF`: a step's full diff, kept outside the workflow history."""

from __future__ import annotations

from pathlib import Path

from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from conceptor.client.diffs import read_diff
from conceptor.contracts import Diff
from conceptor.platform.diff_store import diff_store
from conceptor.platform.settings import get_settings

console = Console(stderr=True)


def diff_table(diff: Diff) -> Table:
    """One row per object that changes (or drifted); the unchanged ones are only counted."""
    counts = ", ".join(f"{k} {v}" for k, v in diff.counts().items() if v) or "empty"
    table = Table(title=f"{diff.target}: {counts}", title_justify="left")
    for column in ("object", "change", "fields", "source"):
        table.add_column(column)
    for c in diff.changes:
        if c.action != "unchanged":
            table.add_row(c.label, c.action, ", ".join(c.fields), c.source)
    return table


async def show_diff(ref: str, out: Path | None) -> int:
    """Exit 0: printed (and saved); 1: unknown reference, or Redis unreachable."""
    settings = get_settings()
    try:
        async with diff_store(settings) as store:
            diff = await read_diff(store, ref)
    except (RedisError, OSError) as exc:
        console.print(f"[bold red]cannot read the diff from Redis ({settings.redis_url}):[/] {exc}")
        return 1
    if diff is None:
        console.print(
            f"[bold red]no diff under {ref}:[/] unknown, or older than the retention "
            f"(CENTRAL_DIFF_RETENTION_SECONDS={settings.diff_retention_seconds:g})"
        )
        return 1
    console.print(diff_table(diff))
    if out is not None:
        out.write_text(diff.model_dump_json(indent=2))
        console.print(f"full diff ({len(diff.changes)} objects) saved to {out}")
    return 0
