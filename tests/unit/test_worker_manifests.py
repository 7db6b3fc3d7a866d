"""`conceptor dev manifests`: one Deployment per worker, API and panel, from the settings."""

from __future__ import annotations

import math
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner, Result

from conceptor.cli import app
from conceptor.commands.k8s_manifests import APP_SERVICE_PORT, DRAIN_MARGIN_SECONDS
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import MAX_WORKERS_PER_QUEUE, Settings, get_settings
from tests.unit.k8s_support import K8S_VERSIONS, containers

SHIPPED_LIMITS = {
    "core": {"cpu": "500m", "memory": "256Mi"},
    "media": {"cpu": "1", "memory": "512Mi"},
}

runner = CliRunner()


def _invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    # The settings are cached per process: read them afresh under this invocation's env.
    get_settings.cache_clear()
    try:
        return runner.invoke(app, ["dev", "manifests", *args], env=env)
    finally:
        get_settings.cache_clear()


def _render(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = _invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize(("core", "media"), [(1, 1), (3, 2), (0, 4), (2, 0), (0, 0)])
def test_workers_render_one_deployment_per_index(core: int, media: int) -> None:
    """--core N --count media=M yields exactly N+M Deployments, named and commanded per index."""
    objects = _render("workers", "--core", str(core), "--count", f"media={media}")
    expected = [f"worker-core-{i}" for i in range(core)] + [
        f"worker-media-{i}" for i in range(media)
    ]
    assert [o["kind"] for o in objects] == ["Deployment"] * (core + media)
    assert [o["metadata"]["name"] for o in objects] == expected
    for obj, name in zip(objects, expected, strict=True):
        _, queue, index = name.split("-")
        (container,) = containers(obj)
        assert container["args"] == ["conceptor", "worker", queue, "--index", index]
        assert "command" not in container  # the image's entrypoint runs the args


def test_worker_pods_probe_the_health_port_and_drain_on_sigterm() -> None:
    """Probes hit /healthz on worker_port(queue, i); SIGKILL comes only after the drain grace."""
    settings = Settings()
    objects = _render(
        "workers", "--core", "2", "--count", "media=1", env={"TILT_PORT_PREFIX": "456"}
    )
    prefixed = settings.model_copy(update={"port_prefix": "456"})
    for obj, (queue, index) in zip(objects, [("core", 0), ("core", 1), ("media", 0)], strict=True):
        pod = obj["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        port = worker_port(prefixed, queue, index)
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
        assert pod["terminationGracePeriodSeconds"] == (
            math.ceil(settings.worker_grace_period_seconds) + DRAIN_MARGIN_SECONDS
        )
        # The shipped file's `resources:` per queue.
        limits = SHIPPED_LIMITS[queue]
        assert container["resources"]["limits"] == limits
        assert container["resources"]["requests"]["memory"] == limits["memory"]
        assert container["image"] == settings.app_image
        assert pod["securityContext"]["runAsNonRoot"] is True
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TILT_PORT_PREFIX"] == "456"
        assert env["CENTRAL_HOST"] == "0.0.0.0"


def test_image_and_namespace_come_from_settings_or_flag() -> None:
    """--image overrides CENTRAL_APP_IMAGE; the namespace is TILT_NAMESPACE."""
    (obj,) = _render(
        "workers",
        "--core",
        "1",
        "--count",
        "media=0",
        "--image",
        "registry.test/app:1.2.3",
        env={"TILT_NAMESPACE": "team-a"},
    )
    assert obj["metadata"]["namespace"] == "team-a"
    assert next(containers(obj))["image"] == "registry.test/app:1.2.3"
    (obj,) = _render(
        "workers", "--core", "0", "--count", "media=1", env={"CENTRAL_APP_IMAGE": "x:9"}
    )
    assert next(containers(obj))["image"] == "x:9"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_manifests_validate_strictly(version: str) -> None:
    """Workers, API and panel validate against the Kubernetes schema in strict mode."""
    objects = _render("workers", "--core", "2", "--count", "media=2") + _render("app")
    assert len(objects) == 8
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--core", "-1"],
            f"error: --core=-1: a worker count cannot be negative "
            f"(allowed: 0..{MAX_WORKERS_PER_QUEUE})",
        ),
        (
            ["--count", "media=-3"],
            "error: --count 'media=-3': expected QUEUE=N, e.g. --count billing=2",
        ),
        (
            ["--count", f"media={MAX_WORKERS_PER_QUEUE + 1}"],
            f"error: --count 'media={MAX_WORKERS_PER_QUEUE + 1}': at most "
            f"{MAX_WORKERS_PER_QUEUE} workers per queue",
        ),
    ],
)
def test_worker_counts_out_of_range_are_cli_errors(args: list[str], message: str) -> None:
    """A negative count or one above the limit exits 2 naming the flag and the limit."""
    result = _invoke("workers", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_the_limit_itself_is_allowed() -> None:
    """MAX_WORKERS_PER_QUEUE workers of a queue render (their ports all fit the block)."""
    objects = _render("workers", "--core", str(MAX_WORKERS_PER_QUEUE), "--count", "media=0")
    assert len(objects) == MAX_WORKERS_PER_QUEUE


def test_app_renders_api_and_panel_behind_the_front_door_port() -> None:
    """api and panel: a Deployment running `conceptor <x> serve` and a Service on port 8000."""
    settings = Settings()
    objects = _render("app")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "api"),
        ("Service", "api"),
        ("Deployment", "panel"),
        ("Service", "panel"),
    ]
    api, api_svc, panel, panel_svc = objects
    (api_c,) = containers(api)
    (panel_c,) = containers(panel)
    assert api_c["args"] == ["conceptor", "api", "serve"]
    assert panel_c["args"] == ["conceptor", "panel", "serve"]
    assert api_c["readinessProbe"]["httpGet"]["path"] == "/api/health"
    assert panel_c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert api_c["ports"] == [{"name": "http", "containerPort": settings.port("api")}]
    for svc, deployment in ((api_svc, api), (panel_svc, panel)):
        assert svc["spec"]["ports"] == [
            {"name": "http", "port": APP_SERVICE_PORT, "targetPort": "http"}
        ]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()
    assert [o["metadata"]["name"] for o in _render("app", "panel")] == ["panel", "panel"]


def test_app_refuses_unknown_components() -> None:
    """An unknown component is a CLI error that lists the known ones."""
    result = _invoke("app", "worker")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown app component 'worker'; known: api, panel"
