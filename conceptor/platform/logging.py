"""Structured logging: console on a TTY, JSON otherwise, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "**redacted**"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authorization|dsn|credential", re.IGNORECASE)
# Values shorter than this are not redacted by value: they would blank out ordinary words.
_MIN_REDACTED_VALUE_LEN = 8


class SecretRedactor:
    """A structlog processor: masks secret-looking keys and any known secret value."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        values = sorted(
            {v for v in secret_values if len(v) >= _MIN_REDACTED_VALUE_LEN}, key=len, reverse=True
        )
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str) and self._pattern is not None:
            return self._pattern.sub(REDACTED, value)
        if isinstance(value, dict):
            return {k: self._scrub_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        return value

    def _scrub_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, ""):
            return REDACTED
        return self._scrub(value)

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self._scrub_item(key, event_dict[key])
        return event_dict


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", secret_values: Iterable[str] = ()
) -> None:
    """Route structlog and stdlib logging (temporalio, uvicorn) through one redacting pipeline."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        SecretRedactor(secret_values),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=True)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request lines of HTTP clients drown the signal; their warnings still show.
    for noisy in ("httpx", "httpcore", "botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def configure_from_settings() -> None:
    """Configure logging with the level, format and secrets of the current settings."""
    from conceptor.platform.settings import get_settings

    settings = get_settings()
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, secret_values=settings.secret_values()
    )


def get_logger(name: str | None = None, **bound: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger.bind(**bound) if bound else logger
