"""Every provisioning activity, bound to settings, for the core worker to register."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from conceptor.activities.drift_watch import DriftWatchActivities
from conceptor.activities.keycloak import KeycloakActivities
from conceptor.activities.postgres import PostgresActivities
from conceptor.activities.redis import RedisActivities
from conceptor.activities.storage import StorageActivities
from conceptor.contracts import PROVISION_DEFAULTS, ProvisionDefaults
from conceptor.platform.settings import Settings


def provisioning_activities(settings: Settings) -> list[Callable[..., Any]]:
    """The activity callables of ProvisionWorkflow and ResetPostgresWorkflow."""
    postgres = PostgresActivities(settings)
    redis = RedisActivities(settings)
    storage = StorageActivities(settings)
    keycloak = KeycloakActivities(settings)

    @activity.defn(name=PROVISION_DEFAULTS)
    async def provision_defaults() -> ProvisionDefaults:
        """Defaults the workflow takes from this worker's settings (it runs as a local activity)."""
        return ProvisionDefaults(
            step_deadline_seconds=settings.provision_step_deadline_seconds,
            drift_repair=settings.drift_repair,
        )

    return [
        provision_defaults,
        postgres.wait_for_postgres,
        postgres.migrate_postgres,
        postgres.reset_postgres,
        redis.wait_for_redis,
        storage.wait_for_minio,
        storage.ensure_buckets,
        keycloak.wait_for_keycloak,
        keycloak.import_realm,
        DriftWatchActivities(settings).register_drift_watch,
    ]
