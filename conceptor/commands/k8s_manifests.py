"""Kubernetes manifests of the app pods (workers, API, panel) from settings, as typed models."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import yaml
from kubernetes.client import (
    ApiClient,
    V1Container,
    V1ContainerPort,
    V1Deployment,
    V1DeploymentSpec,
    V1EnvVar,
    V1EnvVarSource,
    V1HTTPGetAction,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodSecurityContext,
    V1PodSpec,
    V1PodTemplateSpec,
    V1Probe,
    V1ResourceRequirements,
    V1SecretKeySelector,
    V1SecurityContext,
    V1Service,
    V1ServicePort,
    V1ServiceSpec,
)

from conceptor.contracts import CORE_QUEUE
from conceptor.platform.queues import declared_queues, worker_port
from conceptor.platform.settings import MAX_WORKERS_PER_QUEUE, Settings

# The in-cluster addresses of the Kustomize base (_dev-env/k8s/*/service.yaml; a test keeps
# them equal to the rendered Services).
POSTGRES_SECRET = "localdev-postgres"
IN_CLUSTER_ENV: dict[str, str] = {
    "CENTRAL_TEMPORAL_ADDRESS": "localdev-temporal:7233",
    "CENTRAL_REDIS_URL": "redis://localdev-redis:6379/0",
    "CENTRAL_S3_ENDPOINT": "http://localdev-minio:9000",
    "CENTRAL_KEYCLOAK_URL": "http://localdev-keycloak:8080",
    "CENTRAL_SMTP_HOST": "localdev-mailpit",
    "CENTRAL_SMTP_PORT": "1025",
    "CENTRAL_MAILPIT_API_URL": "http://localdev-mailpit:8025",
}
# The front-door's API_UPSTREAM / PANEL_UPSTREAM (_dev-env/k8s/front-door/configmap.yaml).
APP_SERVICE_PORT = 8000
APP_UID = 10001  # the non-root user of _dev-env/Dockerfile
# Kubelet sends SIGKILL this long after SIGTERM: the worker's own drain deadline plus a margin
# for the process to flush logs and exit after the drain.
DRAIN_MARGIN_SECONDS = 5
APP_COMMANDS: dict[str, list[str]] = {
    "api": ["conceptor", "api", "serve"],
    "panel": ["conceptor", "panel", "serve"],
}
APP_HEALTH_PATHS = {"api": "/api/health", "panel": "/healthz"}


class WorkerCountError(ValueError):
    """A worker count flag outside 0..MAX_WORKERS_PER_QUEUE."""


def worker_name(queue: str, index: int) -> str:
    return f"worker-{queue}-{index}"


def worker_command(queue: str, index: int) -> list[str]:
    return ["conceptor", "worker", queue, "--index", str(index)]


def check_worker_count(flag: str, count: int) -> None:
    """Refuse a count the ports and the cluster cannot hold, naming the flag and the limit."""
    if count < 0:
        limit = MAX_WORKERS_PER_QUEUE
        msg = f"{flag}={count}: a worker count cannot be negative (allowed: 0..{limit})"
        raise WorkerCountError(msg)
    if count > MAX_WORKERS_PER_QUEUE:
        msg = (
            f"{flag}={count} is above the limit of {MAX_WORKERS_PER_QUEUE} workers per queue "
            "(MAX_WORKERS_PER_QUEUE: each worker needs its own port in the prefix's block)"
        )
        raise WorkerCountError(msg)


def _labels(component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"conceptor-{component}",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/part-of": "conceptor",
    }


def app_env(settings: Settings) -> list[V1EnvVar]:
    """What every app pod gets: the prefix, all-interface binds, and the in-cluster addresses."""
    secret = [
        V1EnvVar(
            name=name,
            value_from=V1EnvVarSource(
                secret_key_ref=V1SecretKeySelector(name=POSTGRES_SECRET, key=key)
            ),
        )
        for name, key in (
            ("POSTGRES_APP_USER", "APP_USER"),
            ("POSTGRES_APP_PASSWORD", "APP_PASSWORD"),
            ("POSTGRES_APP_DB", "APP_DB"),
            # Each declared database's migrate step creates it when missing, as the superuser
            # (the init script creates only the first), and snapshots copy and swap databases.
            ("CENTRAL_POSTGRES_SUPERUSER_PASSWORD", "POSTGRES_PASSWORD"),
        )
    ]
    plain = {
        "TILT_PORT_PREFIX": settings.port_prefix,
        "TILT_NAMESPACE": settings.namespace,
        "CENTRAL_ENVIRONMENT": settings.environment,
        # Servers bind all interfaces so that probes and Services reach them.
        "CENTRAL_HOST": "0.0.0.0",
        "CENTRAL_LOCALDEV_DIR": "/tmp/localdev",
        "CENTRAL_LOG_FORMAT": "json",
        **IN_CLUSTER_ENV,
        # $(VAR) is expanded by the kubelet from the variables above, the same Secret Postgres uses.
        "CENTRAL_POSTGRES_DSN": (
            "postgresql://$(POSTGRES_APP_USER):$(POSTGRES_APP_PASSWORD)"
            "@localdev-postgres:5432/$(POSTGRES_APP_DB)"
        ),
    }
    return secret + [V1EnvVar(name=k, value=v) for k, v in plain.items()]


def _http_probe(path: str, *, period: int, failures: int) -> V1Probe:
    return V1Probe(
        http_get=V1HTTPGetAction(path=path, port="http"),
        period_seconds=period,
        timeout_seconds=3,
        failure_threshold=failures,
    )


def _container(
    settings: Settings,
    *,
    name: str,
    image: str,
    command: list[str],
    port: int,
    health_path: str,
    limits: Mapping[str, str],
) -> V1Container:
    return V1Container(
        name=name,
        image=image,
        # args, not command: the image's entrypoint runs them (SIGTERM, live-update restarts).
        args=command,
        env=app_env(settings),
        ports=[V1ContainerPort(name="http", container_port=port)],
        # A first start waits for Temporal: give it minutes before liveness may restart it.
        startup_probe=_http_probe(health_path, period=2, failures=150),
        readiness_probe=_http_probe(health_path, period=5, failures=2),
        liveness_probe=_http_probe(health_path, period=15, failures=4),
        resources=V1ResourceRequirements(
            # CPU requests stay small so that N+M workers fit a laptop's cluster; memory
            # requests equal limits so that the scheduler never overcommits memory.
            requests={"cpu": settings.k8s_cpu_request, "memory": limits["memory"]},
            limits=dict(limits),
        ),
        security_context=V1SecurityContext(allow_privilege_escalation=False),
    )


def _deployment(
    settings: Settings,
    *,
    name: str,
    labels: dict[str, str],
    container: V1Container,
    grace_seconds: int,
) -> V1Deployment:
    selector = {"app.kubernetes.io/instance": labels["app.kubernetes.io/instance"]}
    return V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=V1ObjectMeta(name=name, namespace=settings.namespace, labels=labels),
        spec=V1DeploymentSpec(
            replicas=1,
            selector=V1LabelSelector(match_labels=selector),
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels),
                spec=V1PodSpec(
                    containers=[container],
                    termination_grace_period_seconds=grace_seconds,
                    security_context=V1PodSecurityContext(
                        run_as_non_root=True, run_as_user=APP_UID, run_as_group=APP_UID
                    ),
                ),
            ),
        ),
    )


# A queue the environment file gives no `resources:` gets these (today's core worker's).
DEFAULT_WORKER_RESOURCES = {"cpu": "500m", "memory": "256Mi"}


def worker_resources(settings: Settings, queue: str) -> dict[str, str]:
    """The pod's limits: CENTRAL_WORKER_RESOURCES if given for the queue, else the file's."""
    if "worker_resources" in settings.model_fields_set and queue in settings.worker_resources:
        return dict(settings.worker_resources[queue])
    for declared in declared_queues():
        if declared.name == queue and declared.resources is not None:
            return declared.resources.model_dump()
    return dict(DEFAULT_WORKER_RESOURCES)


def worker_deployment(settings: Settings, queue: str, index: int, image: str) -> V1Deployment:
    """One worker process = one pod: `conceptor worker QUEUE --index INDEX`."""
    name = worker_name(queue, index)
    labels = {**_labels("worker", name), "conceptor.dev/queue": queue}
    container = _container(
        settings,
        name="worker",
        image=image,
        command=worker_command(queue, index),
        port=worker_port(settings, queue, index),
        health_path="/healthz",
        limits=worker_resources(settings, queue),
    )
    grace = math.ceil(settings.worker_grace_period_seconds) + DRAIN_MARGIN_SECONDS
    return _deployment(settings, name=name, labels=labels, container=container, grace_seconds=grace)


def worker_manifests(
    settings: Settings,
    *,
    image: str,
    core: int | None = None,
    counts: Mapping[str, int] | None = None,
) -> list[V1Deployment]:
    """A Deployment per worker of every declared queue, in port order: `worker-core-0..`, ...

    Each queue runs its `workers:` from the environment file unless `counts` (or, for the
    platform's queue, `core`) says otherwise; a count for an undeclared queue is refused.
    """
    wanted = dict(counts or {})
    if core is not None:
        wanted[CORE_QUEUE] = core
    queues = declared_queues()
    names = [q.name for q in queues]
    for queue, count in wanted.items():
        flag = "--core" if queue == CORE_QUEUE and core is not None else f"--count {queue}"
        check_worker_count(flag, count)
        if queue not in names:
            known = ", ".join(names)
            msg = f"{flag}: the environment file declares no queue {queue!r} (it has {known})"
            raise WorkerCountError(msg)
    return [
        worker_deployment(settings, q.name, i, image)
        for q in queues
        for i in range(wanted.get(q.name, q.workers))
    ]


def app_manifests(
    settings: Settings, *, components: Sequence[str], image: str
) -> list[V1Deployment | V1Service]:
    """A Deployment and a Service (port 8000, what the front-door proxies to) per component."""
    objects: list[V1Deployment | V1Service] = []
    for component in components:
        if component not in APP_COMMANDS:
            msg = f"unknown app component {component!r}; known: {', '.join(APP_COMMANDS)}"
            raise ValueError(msg)
        labels = _labels(component, component)
        container = _container(
            settings,
            name=component,
            image=image,
            command=APP_COMMANDS[component],
            port=settings.port(component),
            health_path=APP_HEALTH_PATHS[component],
            limits={"cpu": "1", "memory": "512Mi"},
        )
        objects.append(
            _deployment(
                settings, name=component, labels=labels, container=container, grace_seconds=15
            )
        )
        objects.append(
            V1Service(
                api_version="v1",
                kind="Service",
                metadata=V1ObjectMeta(name=component, namespace=settings.namespace, labels=labels),
                spec=V1ServiceSpec(
                    selector={"app.kubernetes.io/instance": component},
                    ports=[V1ServicePort(name="http", port=APP_SERVICE_PORT, target_port="http")],
                ),
            )
        )
    return objects


def to_dicts(objects: Sequence[Any]) -> list[dict[str, Any]]:
    """Plain dicts with the API's camelCase keys, Nones dropped (what kubectl would send)."""
    # The client's serializer is what the API itself would send (camelCase, Nones dropped).
    sanitize: Callable[[object], Any] = ApiClient().sanitize_for_serialization
    return [cast(dict[str, Any], sanitize(obj)) for obj in objects]


def to_yaml(objects: Sequence[Any]) -> str:
    return yaml.safe_dump_all(to_dicts(objects), sort_keys=False)
