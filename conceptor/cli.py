"""The one `conceptor` command line: dev services, workers, provisioning, API."""

from __future__ import annotations

import typer

from conceptor.api.cli import api_app, panel_app
from conceptor.platform.dev_cli import dev_app
from conceptor.platform.logging import configure_from_settings
from conceptor.platform.provision_cli import provision_command, reset_postgres_command
from conceptor.workers.cli import worker_command

app = typer.Typer(
    name="conceptor",
    help="Conceptor: a local microservice stack whose setup is a Temporal workflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev_app, name="dev")
app.add_typer(api_app, name="api")
app.add_typer(panel_app, name="panel")
app.command("worker")(worker_command)
app.command("provision")(provision_command)
app.command("reset-postgres")(reset_postgres_command)


@app.callback()
def _configure() -> None:
    """Configure structured logging before any command runs."""
    configure_from_settings()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
