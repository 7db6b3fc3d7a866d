"""Platform settings: one pydantic-settings model, every port derived from the prefix."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from conceptor.platform import environment as environment_file
from conceptor.platform.limits import MAX_WORKERS_PER_QUEUE, REPO_ROOT

__all__ = ["MAX_WORKERS_PER_QUEUE", "REPO_ROOT", "Settings", "get_settings"]

# Offsets inside the 100-port block that TILT_PORT_PREFIX opens (prefix "440" -> 44000..44099).
PORT_OFFSETS: dict[str, int] = {
    "front_door": 0,
    "api": 1,
    "panel": 2,
    "postgres": 10,
    "redis": 11,
    "temporal": 12,
    "temporal_ui": 13,
    "keycloak": 14,
    "minio": 15,
    "minio_console": 16,
    "mailpit_smtp": 17,
    "mailpit_ui": 18,
    "temporal_http": 19,
    "temporal_metrics": 20,
    "db_tools": 21,
    "keycloak_management": 22,
    "front_door_admin": 23,
    # `conceptor dev serve` answers /ready here: 200 while its real probe of the service passes.
    "launcher_postgres": 80,
    "launcher_redis": 81,
    "launcher_temporal": 82,
    "launcher_keycloak": 83,
    "launcher_minio": 84,
    "launcher_mailpit": 85,
    "launcher_front_door": 86,
    "launcher_db_tools": 87,
}
# Worker health/metrics ports: MAX_WORKERS_PER_QUEUE a queue (conceptor/platform/limits.py).

DEV_ONLY_SECRETS = (
    "postgres_password",
    "postgres_superuser_password",
    "minio_root_password",
    "keycloak_admin_password",
    "api_client_secret",
)
_DEV_SECRET_VALUE = re.compile(r"^(admin|conceptor-dev-.*)$")

Environment = Literal["development", "test", "production"]
BucketPolicy = Literal["private", "public-read"]


class Settings(BaseSettings):
    """Backend settings (env prefix CENTRAL_, plus the TILT_* knobs shared with the Tiltfile)."""

    model_config = SettingsConfigDict(
        env_prefix="CENTRAL_",
        env_file=REPO_ROOT / ".env.development",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Environment = "development"
    port_prefix: str = Field(
        default="440", validation_alias=AliasChoices("TILT_PORT_PREFIX", "CENTRAL_PORT_PREFIX")
    )
    namespace: str = Field(
        default="conceptor", validation_alias=AliasChoices("TILT_NAMESPACE", "CENTRAL_NAMESPACE")
    )
    # Where the worker ports of queues past the second go (README "Ports"); None: prefix + 1.
    worker_port_prefix: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TILT_WORKER_PORT_PREFIX", "CENTRAL_WORKER_PORT_PREFIX"),
    )
    host: str = "127.0.0.1"
    localdev_dir: Path = REPO_ROOT / ".localdev"
    tools_dir: Path = Field(
        default=Path.home() / ".cache" / "conceptor" / "tools",
        validation_alias=AliasChoices("CONCEPTOR_TOOLS_DIR", "CENTRAL_TOOLS_DIR"),
    )
    log_level: str = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    # PostgreSQL
    postgres_user: str = "conceptor"
    postgres_password: SecretStr = SecretStr("conceptor-dev-postgres")
    postgres_db: str = "conceptor"
    postgres_superuser_password: SecretStr = SecretStr("conceptor-dev-superuser")
    postgres_dsn_override: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_POSTGRES_DSN")
    )
    # Only when set (CENTRAL_MIGRATIONS_DIR): else the environment file's first database's.
    migrations_dir: Path | None = None

    # Temporal
    temporal_namespace: str = "default"
    temporal_address_override: str | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_TEMPORAL_ADDRESS")
    )

    # MinIO / S3
    minio_root_user: str = "minioadmin"
    minio_root_password: SecretStr = SecretStr("conceptor-dev-minio")
    # Only for a run that names its own buckets (CENTRAL_BUCKETS, name -> policy): else the
    # environment file's `buckets:`.
    buckets: dict[str, BucketPolicy] = {}
    # Versioning, lifecycle rules (and more) per bucket; `buckets` above adds names and policies.
    buckets_file: Path = REPO_ROOT / "_dev-env" / "buckets.json"
    s3_region: str = "us-east-1"

    # Keycloak
    keycloak_admin_user: str = "admin"
    keycloak_admin_password: SecretStr = SecretStr("admin")
    # The first realm (the API's, and `import_realm`'s plain step): CENTRAL_REALM_NAME and
    # CENTRAL_REALM_FILE when set, else the environment file's first realm (none: unset).
    realm_name: str = ""
    realm_file: Path | None = None
    api_client_id: str = "conceptor-api"
    api_client_secret: SecretStr = SecretStr("conceptor-dev-api-secret")
    # Realm element kinds whose objects provisioning deletes once the file no longer lists them
    # (only those it created itself): comma-separated, e.g. "clients,roles,groups,users".
    realm_managed: str = ""
    # Read the live realm's users through Conceptor's Keycloak extension (one call a page of
    # users with their grants and groups) when it answers; false: the admin API only.
    realm_bulk_read: bool = True

    # Mail
    mail_from: str = "conceptor@lvh.me"
    mail_notify_to: str = "team@lvh.me"

    # Front-door upstreams (default: the API and panel ports of this prefix). The API upstream
    # may name several `host:port`, separated by spaces or commas: balanced round-robin.
    front_door_api_upstream: str | None = None
    front_door_panel_upstream: str | None = None

    # Kubernetes runmode (_dev-env/k8s, conceptor/commands/k8s_manifests.py): the in-cluster
    # addresses the app pods get; unset in local mode, where every address derives from the prefix.
    redis_url_override: str | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_REDIS_URL")
    )
    s3_endpoint_override: str | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_S3_ENDPOINT")
    )
    keycloak_url_override: str | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_KEYCLOAK_URL")
    )
    smtp_host_override: str | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_SMTP_HOST")
    )
    smtp_port_override: int | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_SMTP_PORT")
    )
    mailpit_api_url_override: str | None = Field(
        default=None, validation_alias=AliasChoices("CENTRAL_MAILPIT_API_URL")
    )
    app_image: str = "conceptor-app:dev"  # _dev-env/Dockerfile; Tilt swaps in its own build tag
    k8s_cpu_request: str = "50m"  # per app pod: N+M workers must fit a laptop's cluster

    # Provisioning
    provision_step_deadline_seconds: float = 180.0
    # How long a step's full diff stays in Redis (conceptor/platform/diff_store.py) after the
    # last run that found it; the step's result names it by reference.
    diff_retention_seconds: float = Field(default=30 * 24 * 3600.0, gt=0)
    # The drift watch (a Temporal Schedule, id drift-watch): how often it compares the files
    # with the live state (0 turns it off), and whether it repairs drift or only reports it.
    # Data loss (a service back with none of its state) is always healed.
    drift_interval_seconds: float = Field(default=300.0, ge=0)
    drift_repair: bool = False
    # The schedule's id (the Web UI's Schedules page); tests give each environment its own.
    drift_watch_schedule_id: str = "drift-watch"

    # Workers (conceptor/workers)
    worker_grace_period_seconds: float = 30.0  # SIGTERM: in-flight activities get this long
    worker_health_host: str | None = None  # health/metrics bind address; None: `host`
    # Per-queue overrides for one run, keyed by queue name (e.g. CENTRAL_WORKER_POOL_SIZE=
    # '{"billing": 8}'); a queue they do not name keeps what the environment file's `queues:`
    # say (concurrency, blocking, resources).
    worker_max_concurrent_activities: dict[str, int] = {}
    worker_max_concurrent_workflow_tasks: dict[str, int] = {}
    worker_pool_kind: dict[str, Literal["thread", "process"]] = {}
    worker_pool_size: dict[str, int] = {}
    worker_resources: dict[str, dict[str, str]] = {}

    # API and panel (conceptor/api)
    # The bodies of the environment file's `api.upload_paths`; larger ones get 413.
    api_max_upload_bytes: int = 10 * 1024 * 1024
    api_max_body_bytes: int = 64 * 1024  # every other request body
    api_upload_content_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    api_jwks_min_refresh_seconds: float = 10.0  # unknown-kid refetches are at most this often
    api_extra_issuers: tuple[str, ...] = ()  # accepted `iss` besides the realm's own URLs
    api_dependency_timeout_seconds: float = 3.0  # per dependency, for /api/ready
    # The API's PostgreSQL pool: a request costs a checkout, not a login. 0 opens a connection
    # per request instead (the baseline bench/api_status.py measures the pool against).
    api_postgres_pool_size: int = Field(default=10, ge=0, le=100)
    # The API's shared cache layer in Redis, common to every API process (README "Shared cache
    # layer"): uploads per user in any sliding window (0: no limit), ...
    api_upload_rate_limit: int = Field(default=30, ge=0)
    api_upload_rate_window_seconds: float = Field(default=60.0, gt=0, le=86400)
    # ... how long the first answer to an `Idempotency-Key` is replayed, how long a first
    # request's claim on its key lasts (longer than an upload takes), and how long a concurrent
    # request with the same key waits for it before a 409 ...
    api_idempotency_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)
    api_idempotency_lock_seconds: float = Field(default=60.0, gt=0)
    api_idempotency_wait_seconds: float = Field(default=10.0, ge=0)
    # ... and how long GET /api/status is served from the shared cache (0: computed every time).
    api_status_cache_seconds: float = Field(default=2.0, ge=0, le=3600)
    tilt_ui_url: str = "http://localhost:10350"

    @field_validator("port_prefix", "worker_port_prefix")
    @classmethod
    def _prefix_is_three_digits(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        name = "TILT_PORT_PREFIX" if info.field_name == "port_prefix" else "TILT_WORKER_PORT_PREFIX"
        # 654 is the last prefix whose whole block (65400..65499) is below 65536.
        if not re.fullmatch(r"[1-6][0-9]{2}", value) or int(value) > 654:
            msg = (
                f"{name}={value!r} is not a valid prefix: it must be three digits "
                "from 100 to 654, so that prefix+NN is a TCP port (e.g. 440 -> 44000..44099)"
            )
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _first_realm_from_the_environment_file(self) -> Settings:
        # Set directly, not assigned: an explicit CENTRAL_REALM_* stays the only one in
        # model_fields_set, which is how the activities tell a run's own realm from the file's.
        if not {"realm_name", "realm_file"} <= self.model_fields_set:
            realm = _first_declared_realm()
            if realm is not None:
                if "realm_name" not in self.model_fields_set:
                    object.__setattr__(self, "realm_name", realm[0])
                if "realm_file" not in self.model_fields_set:
                    object.__setattr__(self, "realm_file", realm[1])
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Settings:
        if self.environment == "production":
            weak = [
                name
                for name in DEV_ONLY_SECRETS
                if _DEV_SECRET_VALUE.match(getattr(self, name).get_secret_value())
            ]
            if weak:
                names = ", ".join(f"CENTRAL_{w.upper()}" for w in weak)
                msg = (
                    "development-only default secrets are refused when "
                    f"CENTRAL_ENVIRONMENT=production: set {names}"
                )
                raise ValueError(msg)
        return self

    # ----- ports -------------------------------------------------------------------------

    def port(self, name: str) -> int:
        """The TCP port of a named slot (see PORT_OFFSETS) in this prefix's block."""
        try:
            offset = PORT_OFFSETS[name]
        except KeyError:
            msg = f"unknown port name {name!r}; known: {', '.join(sorted(PORT_OFFSETS))}"
            raise KeyError(msg) from None
        return int(self.port_prefix) * 100 + offset

    def launcher_port(self, service: str) -> int:
        """Where `conceptor dev serve <service>` reports readiness (GET /ready)."""
        return self.port("launcher_" + service.replace("-", "_"))

    def all_ports(self) -> dict[str, int]:
        return {name: self.port(name) for name in PORT_OFFSETS}

    # ----- derived addresses -------------------------------------------------------------

    @property
    def postgres_dsn(self) -> str:
        if self.postgres_dsn_override is not None:
            return self.postgres_dsn_override.get_secret_value()
        pw = self.postgres_password.get_secret_value()
        return (
            f"postgresql://{self.postgres_user}:{pw}@{self.host}:{self.port('postgres')}"
            f"/{self.postgres_db}"
        )

    @property
    def redis_url(self) -> str:
        return self.redis_url_override or f"redis://{self.host}:{self.port('redis')}/0"

    @property
    def temporal_address(self) -> str:
        return self.temporal_address_override or f"{self.host}:{self.port('temporal')}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://localhost:{self.port('temporal_ui')}"

    @property
    def s3_endpoint(self) -> str:
        return self.s3_endpoint_override or f"http://{self.host}:{self.port('minio')}"

    @property
    def keycloak_url(self) -> str:
        return self.keycloak_url_override or f"http://{self.host}:{self.port('keycloak')}"

    @property
    def keycloak_issuer(self) -> str:
        return f"{self.keycloak_url}/realms/{self.realm_name}"

    @property
    def smtp_host(self) -> str:
        return self.smtp_host_override or self.host

    @property
    def smtp_port(self) -> int:
        return self.smtp_port_override or self.port("mailpit_smtp")

    @property
    def mailpit_api_url(self) -> str:
        return self.mailpit_api_url_override or f"http://{self.host}:{self.port('mailpit_ui')}"

    @property
    def front_door_url(self) -> str:
        return f"http://localhost:{self.port('front_door')}"

    def service_dir(self, service: str) -> Path:
        return self.localdev_dir / service

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for redaction and for tests that prove none leaks."""
        values = [getattr(self, name).get_secret_value() for name in DEV_ONLY_SECRETS]
        if self.postgres_dsn_override is not None:
            values.append(self.postgres_dsn_override.get_secret_value())
        return [v for v in values if v]


def _first_declared_realm() -> tuple[str, Path] | None:
    """The environment file's first realm (name, file), or None: none declared, or the file
    unreadable (`conceptor env check` says why; settings never refuse for it)."""
    file = environment_file.default_file()
    try:
        key = (file.resolve(), file.stat().st_mtime_ns)
    except OSError:
        return None
    return _realm_of(key)


@lru_cache(maxsize=4)
def _realm_of(key: tuple[Path, int]) -> tuple[str, Path] | None:
    path = key[0]
    try:
        env = environment_file.load(path)
    except environment_file.EnvironmentFileError:
        return None
    if not env.realms:
        return None
    first = env.realms[0]
    return first.name, (path.parent / first.file).resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and .env.development."""
    return Settings()
