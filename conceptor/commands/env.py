"""`conceptor env check|schema`: the environment file, refused by its YAML path or summarised."""

from __future__ import annotations

from pathlib import Path

import typer

from conceptor.platform import environment, realm_placeholders
from conceptor.platform.settings import get_settings

env_app = typer.Typer(
    help="The environment file (_dev-env/environment.yaml): check it, publish its schema.",
    no_args_is_help=True,
)
# The first line of a passing check: the Tiltfile's preflight looks for it.
OK_PREFIX = "environment ok:"


@env_app.command("check")
def check_command(
    file: Path | None = typer.Argument(
        None,
        help=f"The environment file (default: ${environment.FILE_VARIABLE}, else "
        "_dev-env/environment.yaml).",
        show_default=False,
    ),
    imports: bool = typer.Option(
        True, "--imports/--no-imports", help="Import each queue's and step's module."
    ),
) -> None:
    """Refuse FILE (exit 1, one line per problem: YAML path, what is wrong, what to do), or
    summarise what it declares (exit 0). A realm file's `${NAME}` that nothing resolves is a
    problem too: the import step would refuse it."""
    file = file or environment.default_file()
    try:
        env = realm_placeholders.check(file, get_settings(), imports=imports)
    except environment.EnvironmentFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{OK_PREFIX} {file} ({env.api_version})")
    typer.echo(environment.summary(env))


@env_app.command("schema")
def schema_command(
    write: bool = typer.Option(
        False, "--write", help=f"Write it to {environment.SCHEMA_FILE.name} next to the file."
    ),
) -> None:
    """Print the file's JSON Schema; --write saves it where the file's `$schema` points."""
    text = environment.schema_text()
    if write:
        environment.SCHEMA_FILE.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {environment.SCHEMA_FILE}")
    else:
        typer.echo(text, nl=False)
