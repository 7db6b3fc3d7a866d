"""The environment file as a step reads it: a file it cannot read fails the step for good."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError

from conceptor.platform import environment


def load_declared(error_type: str) -> tuple[environment.Environment, Path]:
    """The file the platform uses now, parsed, and its path. A file that cannot be read or is
    refused is a configuration error: non-retryable, of `error_type`, with the file's problems."""
    file = environment.default_file()
    try:
        return environment.load(file), file
    except environment.EnvironmentFileError as exc:
        raise ApplicationError(str(exc), type=error_type, non_retryable=True) from None
