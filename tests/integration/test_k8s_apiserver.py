"""The Kubernetes mode's manifests against a real kube-apiserver: accepted, idempotent, wired."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conceptor.platform.queues import FIRST_BLOCK_OFFSET, FIRST_BLOCK_QUEUES
from conceptor.platform.settings import (
    MAX_WORKERS_PER_QUEUE,
    PORT_OFFSETS,
    REPO_ROOT,
    Settings,
)
from tests.e2e.tilt_helpers import tilt_binary
from tests.integration.k8s_apiserver import PORT_SLOTS, KubeApiServer
from tests.unit.k8s_support import render_base

# The first test also waits for the server to start (about 6 s here; far longer under load).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

Object = dict[str, Any]
FIELD_MANAGER = "conceptor-test"


@pytest.fixture(scope="session")
def kube(settings: Settings) -> Iterator[KubeApiServer]:
    """etcd and kube-apiserver on the test prefix, ready (`/readyz` ok) before any test runs."""
    server = KubeApiServer(settings)
    try:
        server.start()
        print(f"kube-apiserver ready in {server.started_in:.1f}s")  # shown with -s
        yield server
    finally:
        server.stop()


def fresh_namespace(settings: Settings) -> str:
    """A new namespace named after TILT_NAMESPACE, so runs never see each other's objects."""
    return f"{settings.namespace}-{uuid.uuid4().hex[:8]}"


def base_objects(namespace: str) -> list[Object]:
    """`kubectl kustomize _dev-env` moved to NAMESPACE, as the Tiltfile's k8s mode does."""
    objects = render_base()
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        else:
            obj["metadata"]["namespace"] = namespace
    return objects


def rendered(namespace: str, *args: str) -> list[Object]:
    """`conceptor dev manifests ARGS` with TILT_NAMESPACE=NAMESPACE, as the Tiltfile calls it."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "conceptor"), "dev", "manifests", *args],
        env={**os.environ, "TILT_NAMESPACE": namespace},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"conceptor dev manifests {' '.join(args)}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def manifest_sets(namespace: str) -> list[tuple[str, list[Object]]]:
    """What k8s mode applies, in order: the services' base, workers (0, 1, 20 a queue), the app."""
    sets = [("kustomize _dev-env", base_objects(namespace))]
    for count in (0, 1, MAX_WORKERS_PER_QUEUE):
        n = str(count)
        workers = rendered(namespace, "workers", "--core", n, "--count", f"media={n}")
        sets.append((f"workers {n}+{n}", workers))
    sets.append(("app", rendered(namespace, "app")))
    return sets


def as_yaml(objects: list[Object]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def apply(
    kube: KubeApiServer, objects: list[Object], *extra: str
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        *extra,
        "-f",
        "-",
        stdin=as_yaml(objects),
    )


def server_diff(kube: KubeApiServer, objects: list[Object]) -> subprocess.CompletedProcess[str]:
    """`kubectl diff --server-side`: exit 0 when applying OBJECTS would change nothing."""
    return kube.kubectl(
        "diff",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        stdin=as_yaml(objects),
    )


def applied_names(stdout: str) -> list[str]:
    """`deployment.apps/worker-core-0 serverside-applied` -> `worker-core-0`, one per line."""
    names = []
    for line in stdout.splitlines():
        resource, verb = line.rsplit(" ", 1)
        assert verb == "serverside-applied", line
        names.append(resource.split("/", 1)[1])
    return names


def key(obj: Object) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def live_objects(
    kube: KubeApiServer, namespace: str, kinds: set[str]
) -> dict[tuple[str, str], Object]:
    """Every object of KINDS in NAMESPACE as the server has it (kind, name) -> object."""
    listed = kube.get_json(",".join(sorted(kinds)), "-n", namespace)
    return {key(item): item for item in listed["items"]}


@dataclass(frozen=True)
class Applied:
    namespace: str
    sets: list[tuple[str, list[Object]]]
    results: list[subprocess.CompletedProcess[str] | None]  # None: nothing to apply

    def objects(self) -> dict[tuple[str, str], Object]:
        return {key(o): o for _, objects in self.sets for o in objects}


@pytest.fixture(scope="module")
def applied(kube: KubeApiServer, settings: Settings) -> Applied:
    """Every manifest set server-side applied once into a fresh namespace (results kept)."""
    namespace = fresh_namespace(settings)
    sets = manifest_sets(namespace)
    results = [apply(kube, objects) if objects else None for _, objects in sets]
    return Applied(namespace, sets, results)


def test_apiserver_slots_are_free_in_the_port_scheme() -> None:
    """etcd, kube-apiserver and Tilt's API take slots no service, worker or launcher uses."""
    # Worker slots of the prefix's own block (further queues use a second block).
    used = set(PORT_OFFSETS.values()) | set(
        range(FIRST_BLOCK_OFFSET, FIRST_BLOCK_OFFSET + FIRST_BLOCK_QUEUES * MAX_WORKERS_PER_QUEUE)
    )
    assert len(set(PORT_SLOTS.values())) == len(PORT_SLOTS)
    assert used & set(PORT_SLOTS.values()) == set()
    assert all(0 <= offset < 100 for offset in PORT_SLOTS.values())


def test_server_side_apply_accepts_every_object(applied: Applied) -> None:
    """Each set is accepted whole: one `serverside-applied` line per object, nothing refused."""
    for (label, objects), result in zip(applied.sets, applied.results, strict=True):
        if result is None:
            assert label == "workers 0+0"
            assert objects == []
            continue
        assert result.returncode == 0, f"{label}: {result.stderr}"
        assert applied_names(result.stdout) == [o["metadata"]["name"] for o in objects], label


def test_every_object_is_in_the_fresh_namespace(kube: KubeApiServer, applied: Applied) -> None:
    """The namespace holds exactly the applied objects, and the Namespace itself is active."""
    expected = {k for k, o in applied.objects().items() if o["kind"] != "Namespace"}
    kinds = {kind for kind, _ in expected}
    live = live_objects(kube, applied.namespace, kinds)
    assert set(live) == expected
    assert {o["metadata"]["namespace"] for o in live.values()} == {applied.namespace}
    namespace = kube.get_json("namespace", applied.namespace)
    assert namespace["status"]["phase"] == "Active"
    workers = [name for kind, name in live if kind == "Deployment" and name.startswith("worker-")]
    assert len(workers) == 2 * MAX_WORKERS_PER_QUEUE


def _snapshot(kube: KubeApiServer, applied: Applied) -> dict[tuple[str, str], Object]:
    """Every applied object as the server has it now, the Namespace included."""
    kinds = {kind for kind, _ in applied.objects()} - {"Namespace"}
    live = live_objects(kube, applied.namespace, kinds)
    live[("Namespace", applied.namespace)] = kube.get_json("namespace", applied.namespace)
    return live


def _versions(snapshot: dict[tuple[str, str], Object]) -> dict[tuple[str, str], str]:
    return {k: o["metadata"]["resourceVersion"] for k, o in snapshot.items()}


def _content(snapshot: dict[tuple[str, str], Object]) -> dict[tuple[str, str], Object]:
    """Everything but resourceVersion: spec, data, labels, generation, managedFields (timed)."""
    content = copy.deepcopy(snapshot)
    for obj in content.values():
        del obj["metadata"]["resourceVersion"]
    return content


def test_a_second_apply_changes_nothing(kube: KubeApiServer, applied: Applied) -> None:
    """Re-applying every set changes no object; `kubectl diff --server-side` finds nothing."""
    before = _snapshot(kube, applied)
    for label, objects in applied.sets:
        if not objects:
            continue
        diff = server_diff(kube, objects)
        assert (diff.returncode, diff.stdout) == (0, ""), f"{label}: {diff.stderr}"
        result = apply(kube, objects)
        assert result.returncode == 0, f"{label}: {result.stderr}"
    after = _snapshot(kube, applied)
    assert _content(after) == _content(before)
    # Nothing is written, except that the server rewrites an unchanged PersistentVolumeClaim
    # on every apply (a new resourceVersion, the same content: an upstream quirk of no-op
    # server-side applies, kubernetes/kubernetes#95460).
    moved = {k for k, v in _versions(after).items() if v != _versions(before)[k]}
    assert {kind for kind, _ in moved} <= {"PersistentVolumeClaim"}, moved
    # The comparison can fail: a real change shows in the content and the resourceVersion.
    base = applied.sets[0][1]
    original = next(o for o in base if o["kind"] == "ConfigMap")
    changed = copy.deepcopy(original)
    changed["metadata"].setdefault("annotations", {})["conceptor.test/changed"] = "yes"
    diff = server_diff(kube, [changed])
    assert diff.returncode == 1, diff.stderr
    assert apply(kube, [changed]).returncode == 0
    now = _snapshot(kube, applied)
    assert _content(now)[key(changed)] != _content(after)[key(changed)]
    assert _versions(now)[key(changed)] != _versions(after)[key(changed)]
    # Back as rendered: server-side apply drops the annotation this manager no longer sets.
    assert apply(kube, [original]).returncode == 0
    assert server_diff(kube, base).returncode == 0


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) evaluated as the server does."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value, op, values = (
            labels.get(expression["key"]),
            expression["operator"],
            expression.get("values", []),
        )
        ok = {
            "In": value in values,
            "NotIn": value not in values,
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }[op]
        if not ok:
            return False
    return True


def test_selectors_match_pods_and_every_service_selects_a_deployment(
    kube: KubeApiServer, applied: Applied
) -> None:
    """Read back from the server: selectors match pod templates, Services reach named ports."""
    assert not _selects({"matchLabels": {"app": "a"}}, {"app": "b"})  # the check can fail
    live = live_objects(kube, applied.namespace, {"Deployment", "Service"})
    deployments = [o for (kind, _), o in live.items() if kind == "Deployment"]
    services = [o for (kind, _), o in live.items() if kind == "Service"]
    assert deployments and services
    for deployment in deployments:
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"], pod_labels), deployment["metadata"]["name"]
    for service in services:
        name, selector = service["metadata"]["name"], service["spec"].get("selector")
        assert selector, f"Service {name} selects nothing"
        targets = [
            d
            for d in deployments
            if _selects({"matchLabels": selector}, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert targets, f"Service {name} selects no Deployment's pods ({selector})"
        container_ports = [
            port
            for d in targets
            for c in d["spec"]["template"]["spec"]["containers"]
            for port in c.get("ports", [])
        ]
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            known = (
                [p["name"] for p in container_ports if "name" in p]
                if isinstance(target, str)
                else [p["containerPort"] for p in container_ports]
            )
            assert target in known, (
                f"Service {name} port {port['port']}: no container port {target}"
            )


def test_the_server_refuses_a_bad_label_and_a_negative_port(
    kube: KubeApiServer, applied: Applied
) -> None:
    """Broken copies of real objects are refused by the server itself, with its message."""
    base = applied.sets[0][1]
    deployment = copy.deepcopy(next(o for o in base if key(o) == ("Deployment", "localdev-redis")))
    service = copy.deepcopy(next(o for o in base if key(o) == ("Service", "localdev-redis")))
    before = _versions(_snapshot(kube, applied))
    deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] = "not a label!"
    service["spec"]["ports"][0]["port"] = -1
    # --validate=false: kubectl checks nothing itself, so the refusal is the server's.
    for broken, message in [
        (deployment, 'metadata.labels: Invalid value: "not a label!"'),
        (service, "spec.ports[0].port: Invalid value: -1: must be between 1 and 65535, inclusive"),
    ]:
        result = apply(kube, [broken], "--validate=false")
        assert result.returncode != 0, f"{key(broken)} was accepted"
        assert message in result.stderr, result.stderr
    assert _versions(_snapshot(kube, applied)) == before


# What each Tilt resource carries, by kind of resource (the Tiltfile's resource_plan).
TILT_LABELS = {"localdev-": "98-svc", "worker-": "01-worker", "api": "00-app", "panel": "00-app"}


def _tiltfile_result(
    kube: KubeApiServer, settings: Settings, home: Path, namespace: str
) -> dict[str, dict[str, Any]]:
    """`tilt alpha tiltfile-result` with this server's kubeconfig: {resource: manifest}."""
    env = {k: v for k, v in kube.env().items() if not k.startswith(("TILT_", "CENTRAL_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),  # Tilt keeps its own state under $HOME: not the developer's
        CONCEPTOR_TOOLS_DIR=str(settings.tools_dir),
        # No TILT_INFRA: the Tiltfile must pick k8s because the context is an allowed one.
        TILT_PORT_PREFIX=settings.port_prefix,
        TILT_NAMESPACE=namespace,
        TILT_DISABLE_ANALYTICS="1",
    )
    result = subprocess.run(
        [str(tilt_binary()), "alpha", "tiltfile-result", "-f", str(REPO_ROOT / "Tiltfile")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"tilt exited {result.returncode}\n{result.stderr}"
    return {m["Name"]: m for m in json.loads(result.stdout)["Manifests"]}


def test_the_objects_tilt_deploys_are_accepted_by_the_server(
    kube: KubeApiServer, settings: Settings, tmp_path: Path
) -> None:
    """Each Tilt resource's objects, as the Tiltfile hands them to Tilt, apply in TILT_NAMESPACE.

    The Tiltfile is evaluated by the real `tilt` with this server's kubeconfig (context
    `orbstack`, no TILT_INFRA), then each resource's objects are server-side applied in Tilt's
    order (`uncategorized` first). `tilt up` itself cannot run here: it refuses the whole
    Tiltfile with "Failed to connect to Docker" as soon as any resource has a docker_build
    image (localdev-temporal, the app), and no Docker engine runs on these machines. So this
    does not check what Tilt adds when it deploys (built image references, its own labels),
    nor anything only a cluster shows: images, pods running, probes, port forwards connecting.
    """
    namespace = fresh_namespace(settings)
    manifests = _tiltfile_result(kube, settings, tmp_path, namespace)
    # Only the k8s mode has Tilt's `uncategorized` (Namespace, volumes, ConfigMaps, Secrets).
    assert "uncategorized" in manifests, sorted(manifests)
    declared: dict[tuple[str, str], Object] = {}
    for name in ["uncategorized", *sorted(set(manifests) - {"uncategorized"})]:
        objects = [
            o for o in yaml.safe_load_all(manifests[name]["DeployTarget"].get("yaml") or "") if o
        ]
        prefix = next((p for p in TILT_LABELS if name.startswith(p)), None)
        if name == "uncategorized":
            assert {o["kind"] for o in objects} >= {"Namespace", "PersistentVolumeClaim"}
        elif not objects:  # a local resource: provision, unit-tests, ...
            continue
        else:
            labels = manifests[name].get("Labels") or {}
            assert labels, f"{name} has no Tilt label"
            if prefix is not None:
                assert TILT_LABELS[prefix] in labels, name
            assert any(o["kind"] == "Deployment" for o in objects), name
        result = apply(kube, objects)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert applied_names(result.stdout) == [o["metadata"]["name"] for o in objects], name
        declared.update((key(o), o) for o in objects)
    expected = {k for k in declared if k[0] != "Namespace"}
    live = live_objects(kube, namespace, {kind for kind, _ in expected})
    assert set(live) == expected
    workers = {n for kind, n in expected if kind == "Deployment" and n.startswith("worker-")}
    assert workers == {"worker-core-0", "worker-media-0"}
    # The Tiltfile's own edits reached the server: Keycloak's admin URL on this prefix.
    keycloak = live[("Deployment", "localdev-keycloak")]
    args = keycloak["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--hostname-admin=http://localhost:{settings.port('keycloak')}" in args
