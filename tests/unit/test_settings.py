"""Settings: ports derived from the prefix, refused prefixes, dev secrets outside development."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from conceptor.platform.queues import worker_port
from conceptor.platform.settings import PORT_OFFSETS, REPO_ROOT, Settings

_KNOB_VARS = (
    "TILT_PORT_PREFIX",
    "CENTRAL_PORT_PREFIX",
    "CENTRAL_ENVIRONMENT",
    "CENTRAL_POSTGRES_PASSWORD",
    "CENTRAL_POSTGRES_SUPERUSER_PASSWORD",
    "CENTRAL_MINIO_ROOT_PASSWORD",
    "CENTRAL_KEYCLOAK_ADMIN_PASSWORD",
    "CENTRAL_API_CLIENT_SECRET",
    "CENTRAL_POSTGRES_DSN",
)
STRONG_SECRETS = {
    "CENTRAL_POSTGRES_PASSWORD": "pg-9f2c1e7a",
    "CENTRAL_POSTGRES_SUPERUSER_PASSWORD": "pgsu-41d8cd98",
    "CENTRAL_MINIO_ROOT_PASSWORD": "minio-8f00b204",
    "CENTRAL_KEYCLOAK_ADMIN_PASSWORD": "kc-e9800998",
    "CENTRAL_API_CLIENT_SECRET": "api-ecf8427e",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the knobs it sets (the session may run on a test prefix)."""
    for name in _KNOB_VARS:
        monkeypatch.delenv(name, raising=False)


def make_settings() -> Settings:
    return Settings(_env_file=None)


def test_ports_default_to_prefix_440() -> None:
    """Without TILT_PORT_PREFIX the stack uses the 44000 block of the design's port table."""
    settings = make_settings()
    assert settings.port_prefix == "440"
    assert settings.port("front_door") == 44000
    assert settings.port("api") == 44001
    assert settings.port("panel") == 44002
    assert settings.port("postgres") == 44010
    assert settings.port("temporal") == 44012
    assert settings.port("temporal_ui") == 44013
    assert settings.port("mailpit_ui") == 44018
    assert settings.port("db_tools") == 44021


def test_ports_follow_tilt_port_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every port and derived address moves with TILT_PORT_PREFIX."""
    monkeypatch.setenv("TILT_PORT_PREFIX", "452")
    settings = make_settings()
    assert settings.all_ports() == {name: 45200 + off for name, off in PORT_OFFSETS.items()}
    assert worker_port(settings, "core", 0) == 45230
    assert worker_port(settings, "core", 19) == 45249
    assert worker_port(settings, "media", 2) == 45252
    assert settings.postgres_dsn == (
        "postgresql://conceptor:conceptor-dev-postgres@127.0.0.1:45210/conceptor"
    )
    assert settings.redis_url == "redis://127.0.0.1:45211/0"
    assert settings.temporal_address == "127.0.0.1:45212"
    assert settings.temporal_ui_url == "http://localhost:45213"
    assert settings.keycloak_issuer == "http://127.0.0.1:45214/realms/technova"
    assert settings.s3_endpoint == "http://127.0.0.1:45215"
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 45217)
    assert settings.front_door_url == "http://localhost:45200"


def test_port_slots_are_unique_and_inside_the_block() -> None:
    """No two named slots or worker slots share a port, and all stay in the prefix's 100."""
    settings = make_settings()
    workers = [worker_port(settings, q, i) for q in ("core", "media") for i in range(20)]
    ports = [*settings.all_ports().values(), *workers]
    assert len(ports) == len(set(ports))
    assert min(ports) >= 44000
    assert max(ports) <= 44099


@pytest.mark.parametrize("prefix", ["44", "4400", "abc", "099", "655", "699", ""])
def test_bad_prefix_is_refused_with_the_rule(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """A prefix that cannot make TCP ports is refused, naming the variable and the rule."""
    monkeypatch.setenv("TILT_PORT_PREFIX", prefix)
    with pytest.raises(ValidationError) as err:
        make_settings()
    assert err.value.errors()[0]["msg"] == (
        f"Value error, TILT_PORT_PREFIX={prefix!r} is not a valid prefix: it must be three "
        "digits from 100 to 654, so that prefix+NN is a TCP port (e.g. 440 -> 44000..44099)"
    )


@pytest.mark.parametrize("prefix", ["100", "451", "654"])
def test_prefix_bounds_are_accepted(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """The lowest and highest prefixes whose whole block is a valid port range are accepted."""
    monkeypatch.setenv("TILT_PORT_PREFIX", prefix)
    settings = make_settings()
    assert settings.port("front_door") == int(prefix) * 100
    assert worker_port(settings, "media", 19) == int(prefix) * 100 + 69


def test_unknown_port_name_lists_the_known_ones() -> None:
    """A typo in a port name says which names exist."""
    with pytest.raises(KeyError) as err:
        make_settings().port("postgress")
    assert err.value.args[0] == (
        f"unknown port name 'postgress'; known: {', '.join(sorted(PORT_OFFSETS))}"
    )


def test_worker_port_refuses_unknown_queue_and_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker ports exist only for the declared queues and indexes 0..19."""
    monkeypatch.delenv("CONCEPTOR_ENVIRONMENT_FILE", raising=False)
    settings = make_settings()
    with pytest.raises(KeyError) as key_err:
        worker_port(settings, "video", 0)
    assert key_err.value.args[0] == (
        f"queue 'video' is not declared in {REPO_ROOT / '_dev-env' / 'environment.yaml'}; "
        "it declares: core, media (add it under `queues:` to run it)"
    )
    with pytest.raises(ValueError, match=r"^worker index 20 is outside 0\.\.19$"):
        worker_port(settings, "core", 20)


def test_production_refuses_dev_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """CENTRAL_ENVIRONMENT=production with the development defaults names every weak secret."""
    monkeypatch.setenv("CENTRAL_ENVIRONMENT", "production")
    with pytest.raises(ValidationError) as err:
        make_settings()
    assert err.value.errors()[0]["msg"] == (
        "Value error, development-only default secrets are refused when "
        "CENTRAL_ENVIRONMENT=production: set CENTRAL_POSTGRES_PASSWORD, "
        "CENTRAL_POSTGRES_SUPERUSER_PASSWORD, CENTRAL_MINIO_ROOT_PASSWORD, "
        "CENTRAL_KEYCLOAK_ADMIN_PASSWORD, CENTRAL_API_CLIENT_SECRET"
    )


def test_production_names_only_the_remaining_dev_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing all but one default leaves exactly that one in the message."""
    monkeypatch.setenv("CENTRAL_ENVIRONMENT", "production")
    for name, value in STRONG_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CENTRAL_KEYCLOAK_ADMIN_PASSWORD", "admin")
    with pytest.raises(ValidationError) as err:
        make_settings()
    assert err.value.errors()[0]["msg"].endswith(": set CENTRAL_KEYCLOAK_ADMIN_PASSWORD")


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every secret set to a non-development value, production settings load."""
    monkeypatch.setenv("CENTRAL_ENVIRONMENT", "production")
    for name, value in STRONG_SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = make_settings()
    assert settings.environment == "production"
    assert settings.keycloak_admin_password.get_secret_value() == "kc-e9800998"


@pytest.mark.parametrize("environment", ["development", "test"])
def test_dev_secrets_are_fine_outside_production(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    """Development and test keep the documented defaults (Keycloak admin/admin)."""
    monkeypatch.setenv("CENTRAL_ENVIRONMENT", environment)
    settings = make_settings()
    assert settings.keycloak_admin_user == "admin"
    assert settings.keycloak_admin_password.get_secret_value() == "admin"


def test_env_development_file_is_read(tmp_path: Path) -> None:
    """Values in a .env.development file reach the settings (prefix and CENTRAL_* alike)."""
    env_file = tmp_path / ".env.development"
    env_file.write_text("TILT_PORT_PREFIX=461\nCENTRAL_POSTGRES_PASSWORD=from-dotenv-file\n")
    settings = Settings(_env_file=env_file)
    assert settings.port("postgres") == 46110
    assert settings.postgres_password.get_secret_value() == "from-dotenv-file"


def test_environment_beats_env_development_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A variable set in the environment overrides the same one in .env.development."""
    env_file = tmp_path / ".env.development"
    env_file.write_text("TILT_PORT_PREFIX=461\n")
    monkeypatch.setenv("TILT_PORT_PREFIX", "462")
    settings = Settings(_env_file=env_file)
    assert settings.port("front_door") == 46200


def test_secret_values_lists_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """secret_values() feeds the log redactor: every secret, the DSN override included."""
    for name, value in STRONG_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CENTRAL_POSTGRES_DSN", "postgresql://u:dsn-pass-77@db:5432/x")
    assert sorted(make_settings().secret_values()) == sorted(
        [*STRONG_SECRETS.values(), "postgresql://u:dsn-pass-77@db:5432/x"]
    )
