"""Logging: secrets redacted by key and by value; JSON off a TTY, console on one."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from conceptor.platform.logging import REDACTED, SecretRedactor, configure_logging, get_logger

SECRET = "conceptor-dev-postgres"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the tests that follow."""
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    structlog.configure(**saved_config)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def redact(event: dict[str, Any], secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    return dict(SecretRedactor(secrets)(None, "info", dict(event)))


def test_secret_keys_are_redacted() -> None:
    """Keys that name a secret are masked whatever their value; other keys are kept."""
    event = {
        "event": "connecting",
        "password": "hunter2",
        "api_token": "abc",
        "Authorization": "Bearer x.y.z",
        "postgres_dsn": "postgresql://u:p@h/db",
        "client_secret": "s",
        "user": "conceptor",
    }
    assert redact(event) == {
        "event": "connecting",
        "password": REDACTED,
        "api_token": REDACTED,
        "Authorization": REDACTED,
        "postgres_dsn": REDACTED,
        "client_secret": REDACTED,
        "user": "conceptor",
    }


def test_empty_secret_keys_stay_visible() -> None:
    """An unset secret (None or empty) is shown as such: that is useful, and leaks nothing."""
    assert redact({"password": None, "token": ""}) == {"password": None, "token": ""}


def test_nested_secret_keys_are_redacted() -> None:
    """Secret keys inside dicts and lists of dicts are found too."""
    event = {"config": {"s3": {"secret_access_key": "k" * 12, "region": "us-east-1"}}}
    assert redact(event) == {
        "config": {"s3": {"secret_access_key": REDACTED, "region": "us-east-1"}}
    }


def test_known_secret_values_are_redacted_anywhere() -> None:
    """A known secret value is cut out of any string, in any key, nested or in lists."""
    event = {
        "event": f"login with {SECRET} failed",
        "url": f"postgresql://conceptor:{SECRET}@127.0.0.1:44010/conceptor",
        "argv": ["psql", f"--password={SECRET}"],
        "pair": ("a", SECRET),
    }
    assert redact(event, (SECRET,)) == {
        "event": f"login with {REDACTED} failed",
        "url": f"postgresql://conceptor:{REDACTED}@127.0.0.1:44010/conceptor",
        "argv": ["psql", f"--password={REDACTED}"],
        "pair": ("a", REDACTED),
    }


def test_short_secret_values_are_not_redacted_by_value() -> None:
    """Values under 8 characters (Keycloak's dev 'admin') would blank ordinary words."""
    assert redact({"event": "admin user created"}, ("admin",)) == {"event": "admin user created"}


def test_longest_secret_wins_when_secrets_overlap() -> None:
    """A secret that contains another is masked whole, leaving no tail behind."""
    event = {"event": "x conceptor-dev-minio-extra y"}
    secrets = ("conceptor-dev-minio", "conceptor-dev-minio-extra")
    assert redact(event, secrets) == {"event": f"x {REDACTED} y"}


def test_json_renderer_when_not_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """fmt=auto off a TTY writes one JSON object per line, secrets redacted."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt="auto", secret_values=[SECRET])
    get_logger("conceptor.test").info("starting", dsn="x", note=f"pw={SECRET}", port=44010)
    line = json.loads(stream.getvalue().strip())
    assert {k: line[k] for k in ("event", "dsn", "note", "port", "level", "logger")} == {
        "event": "starting",
        "dsn": REDACTED,
        "note": f"pw={REDACTED}",
        "port": 44010,
        "level": "info",
        "logger": "conceptor.test",
    }
    assert line["timestamp"].endswith("Z")


def test_console_renderer_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """fmt=auto on a TTY renders for people (not JSON), still redacted."""
    stream = FakeTTY()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt="auto", secret_values=[SECRET])
    get_logger("conceptor.test").info("starting", note=f"pw={SECRET}")
    output = stream.getvalue()
    assert "starting" in output
    assert f"pw={REDACTED}" in output
    assert SECRET not in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)


@pytest.mark.parametrize(("fmt", "is_json"), [("json", True), ("console", False)])
def test_explicit_format_beats_tty_detection(
    monkeypatch: pytest.MonkeyPatch, fmt: str, is_json: bool
) -> None:
    """CENTRAL_LOG_FORMAT=json|console is obeyed whether or not stderr is a TTY."""
    stream = FakeTTY() if is_json else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt=fmt)
    get_logger("conceptor.test").info("hello")
    output = stream.getvalue().strip()
    if is_json:
        assert json.loads(output)["event"] == "hello"
    else:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", output)  # the console renderer colours
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT[\d:.]+Z \[info +\] hello +\[conceptor\.test\]", plain
        )
        with pytest.raises(json.JSONDecodeError):
            json.loads(output)


def test_stdlib_loggers_go_through_the_same_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines from libraries (temporalio, uvicorn) logging via stdlib are redacted and JSON too."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt="json", secret_values=[SECRET])
    logging.getLogger("temporalio.worker").warning("retrying with %s", SECRET)
    line = json.loads(stream.getvalue().strip())
    assert line["event"] == f"retrying with {REDACTED}"
    assert line["level"] == "warning"
    assert line["logger"] == "temporalio.worker"


def test_level_filters_lower_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """level=WARNING drops info lines from structlog and stdlib loggers alike."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(level="warning", fmt="json")
    get_logger("conceptor.test").info("quiet")
    logging.getLogger("uvicorn").info("quiet too")
    get_logger("conceptor.test").warning("loud")
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["loud"]
