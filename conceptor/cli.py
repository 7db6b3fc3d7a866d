"""The one `conceptor` command line: dev services, workers, provisioning, API."""

from __future__ import annotations

import logging
import os
import sys

import typer

from conceptor.api.cli import api_app, panel_app
from conceptor.commands.dev import dev_app
from conceptor.commands.env import env_app
from conceptor.commands.provision import (
    drift_command,
    provision_command,
    reset_postgres_command,
)
from conceptor.commands.realm import realm_app
from conceptor.commands.snapshot import snapshot_app
from conceptor.commands.workers import workers_command
from conceptor.platform.logging import configure_from_settings
from conceptor.workers.cli import worker_command

app = typer.Typer(
    name="conceptor",
    help="Conceptor: a local microservice stack whose setup is a Temporal workflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev_app, name="dev")
app.add_typer(env_app, name="env")
app.add_typer(api_app, name="api")
app.add_typer(panel_app, name="panel")
app.add_typer(realm_app, name="realm")
app.add_typer(snapshot_app, name="snapshot")
app.command("worker")(worker_command)
app.command("workers")(workers_command)
app.command("provision")(provision_command)
app.command("reset-postgres")(reset_postgres_command)
app.command("drift")(drift_command)


@app.callback()
def _configure() -> None:
    """Configure structured logging before any command runs."""
    configure_from_settings()


def main() -> None:
    """Run the command, then leave without finalising the interpreter.

    The Temporal SDK's native threads (workers, clients) outlive the event loop; finalising
    the interpreter under them can abort the process after a clean run ("PyGILState_Release
    ... finalizing", exit 134). By the time a command returns, its work is flushed and closed.
    """
    try:
        app()
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
