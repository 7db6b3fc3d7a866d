"""Every provisioning activity, bound to settings, for the core worker to register."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from conceptor.activities.custom_steps import CustomStepActivities, load_step, plans
from conceptor.activities.drift_watch import DriftWatchActivities
from conceptor.activities.keycloak import KeycloakActivities
from conceptor.activities.postgres import PostgresActivities
from conceptor.activities.redis import RedisActivities
from conceptor.activities.seed_bucket import BucketSeedActivities
from conceptor.activities.seed_postgres import SeedActivities
from conceptor.activities.storage import StorageActivities
from conceptor.contracts import PROVISION_DEFAULTS, ProvisionDefaults, ProvisionGraph
from conceptor.platform.environment import EnvironmentFileError
from conceptor.platform.settings import Settings
from conceptor.stack_graph import current_environment, environment_graph

ENVIRONMENT_REFUSED = "EnvironmentFileRefused"


def worker_graph() -> ProvisionGraph:
    """The graph of the environment file this worker reads, a team's steps imported to know
    which of them plan; a refused file fails provisioning with its problems."""
    try:
        env, folder = current_environment()
    except EnvironmentFileError as exc:
        raise ApplicationError(str(exc), type=ENVIRONMENT_REFUSED, non_retryable=True) from None
    return environment_graph(env, plans=lambda step: plans(load_step(step, folder)))


def provisioning_activities(settings: Settings) -> list[Callable[..., Any]]:
    """The activity callables of ProvisionWorkflow and ResetPostgresWorkflow."""
    postgres = PostgresActivities(settings)
    redis = RedisActivities(settings)
    storage = StorageActivities(settings)
    keycloak = KeycloakActivities(settings)

    @activity.defn(name=PROVISION_DEFAULTS)
    async def provision_defaults() -> ProvisionDefaults:
        """Defaults the workflow takes from this worker's settings and environment file (it
        runs as a local activity: the workflow itself reads no file)."""
        return ProvisionDefaults(
            step_deadline_seconds=settings.provision_step_deadline_seconds,
            drift_repair=settings.drift_repair,
            graph=worker_graph(),
        )

    return [
        provision_defaults,
        postgres.wait_for_postgres,
        postgres.migrate_postgres,
        postgres.reset_postgres,
        SeedActivities(postgres).seed_postgres,
        redis.wait_for_redis,
        storage.wait_for_minio,
        storage.ensure_buckets,
        BucketSeedActivities(storage).seed_bucket,
        keycloak.wait_for_keycloak,
        keycloak.import_realm,
        CustomStepActivities(settings).custom_step,
        DriftWatchActivities(settings).register_drift_watch,
    ]
