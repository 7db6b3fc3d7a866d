"""The Tiltfile evaluated by the real `tilt` in both infra modes declares the same resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conceptor.platform.devservices import get_service
from conceptor.platform.queues import worker_port
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

pytestmark = pytest.mark.integration

PREFIX = "456"
NAMESPACE = "team-a"
CORE, MEDIA = 2, 3
# No cluster answers there: evaluating the Tiltfile must not need one.
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: offline
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: offline
  user: {token: offline}
contexts:
- name: orbstack
  context: {cluster: offline, user: offline}
current-context: orbstack
"""
Manifests = dict[str, dict[str, Any]]


def _evaluate(tmp: Path, infra: str, runmode: str) -> Manifests:
    """`tilt alpha tiltfile-result` for one mode: {resource name: manifest}."""
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    settings = Settings()
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TILT_", "KUBE", "CENTRAL_"))}
    env.update(
        PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp),  # Tilt keeps its own state under $HOME: not the developer's
        CONCEPTOR_TOOLS_DIR=str(settings.tools_dir),
        KUBECONFIG=str(kubeconfig),
        TILT_INFRA=infra,
        TILT_RUNMODE=runmode,
        TILT_PORT_PREFIX=PREFIX,
        TILT_NAMESPACE=NAMESPACE,
        TILT_WORKERS_CORE=str(CORE),
        TILT_WORKERS_MEDIA=str(MEDIA),
    )
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    result = subprocess.run(
        [str(tilt), "alpha", "tiltfile-result", "-f", str(REPO_ROOT / "Tiltfile")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"{infra}/{runmode}: tilt exited {result.returncode}\n{result.stderr}"
    )
    return {m["Name"]: m for m in json.loads(result.stdout)["Manifests"]}


@pytest.fixture(scope="module")
def modes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Manifests]:
    return {
        (infra, runmode): _evaluate(tmp_path_factory.mktemp(f"{infra}-{runmode}"), infra, runmode)
        for infra in ("local", "k8s")
        for runmode in ("dev-in-tilt", "dev-outside-tilt")
    }


def _links(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    links = manifest["DeployTarget"].get("Links") or []
    return [(link["Name"], link["URL"]["Host"] + link["URL"]["Path"]) for link in links]


def _objects(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(manifest["DeployTarget"].get("yaml") or "") if o]


def _forwarded(manifest: dict[str, Any]) -> set[int]:
    spec = manifest["DeployTarget"].get("portForwardTemplateSpec") or {"forwards": []}
    return {f["localPort"] for f in spec["forwards"]}


@pytest.mark.parametrize("runmode", ["dev-in-tilt", "dev-outside-tilt"])
def test_both_modes_declare_the_same_resources(
    modes: dict[tuple[str, str], Manifests], runmode: str
) -> None:
    """Same names, labels, dependencies and links; k8s adds only Tilt's `uncategorized`."""
    local, k8s = modes[("local", runmode)], modes[("k8s", runmode)]
    assert set(k8s) - set(local) == {"uncategorized"}
    assert set(local) - set(k8s) == set()
    for name, manifest in local.items():
        assert k8s[name].get("Labels") == manifest.get("Labels"), name
        assert k8s[name]["ResourceDependencies"] == manifest["ResourceDependencies"], name
        assert _links(k8s[name]) == _links(manifest), name
    workers = {f"worker-core-{i}" for i in range(CORE)} | {
        f"worker-media-{i}" for i in range(MEDIA)
    }
    if runmode == "dev-in-tilt":
        assert workers | {"api", "panel"} <= set(k8s)
    else:
        assert not (workers | {"api", "panel"}) & set(k8s)
        assert all(not m["ImageTargets"] or m["Name"] == "localdev-temporal" for m in k8s.values())


def test_every_local_port_is_forwarded_in_k8s_mode(
    modes: dict[tuple[str, str], Manifests],
) -> None:
    """Each port a service, worker or app listens on locally is a port forward of its pod."""
    settings = Settings(port_prefix=PREFIX)
    local, k8s = modes[("local", "dev-in-tilt")], modes[("k8s", "dev-in-tilt")]
    for name, manifest in local.items():
        if name.startswith("localdev-"):
            svc = get_service(name.removeprefix("localdev-"))
            expected = {settings.port(p) for p in svc.ports}
        elif name.startswith("worker-"):
            _, queue, index = name.split("-")
            expected = {worker_port(settings, queue, int(index))}
        elif name in ("api", "panel"):
            expected = {settings.port(name)}
        elif name == "db-tools":
            expected = {settings.port(p) for p in get_service(name).ports}
        else:
            assert "portForwardTemplateSpec" not in k8s[name]["DeployTarget"], name
            continue
        assert _forwarded(k8s[name]) == expected, name
        if name.startswith("worker-") or name in ("api", "panel"):
            # Workers and apps: local mode's readiness probe asks the port the pod forwards.
            probe = manifest["DeployTarget"]["ReadinessProbe"]["httpGet"]
            assert {probe["port"]} == expected, name


def _without_niced(argv: list[str]) -> list[str]:
    """The command itself: local mode runs what `tilt up` does not wait on through
    `bash .../niced.bash LEVEL` (a lower CPU priority), which a pod has no need of."""
    if len(argv) > 3 and argv[0] == "bash" and argv[1].endswith("/niced.bash"):
        return argv[3:]
    return argv


def test_k8s_workloads_run_local_modes_commands_in_the_namespace(
    modes: dict[tuple[str, str], Manifests],
) -> None:
    """Pods run the same `conceptor` command lines and probe paths, all in TILT_NAMESPACE."""
    local, k8s = modes[("local", "dev-in-tilt")], modes[("k8s", "dev-in-tilt")]
    for name, manifest in k8s.items():
        objects = _objects(manifest)
        for obj in objects:
            where = obj["metadata"].get("namespace") or obj["metadata"]["name"]
            assert where == NAMESPACE, f"{name}: {obj['kind']} {obj['metadata']['name']}"
        if name.startswith("worker-") or name in ("api", "panel"):
            (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            argv = _without_niced(local[name]["DeployTarget"]["ServeCmd"]["Argv"])
            assert container["args"] == [Path(argv[0]).name, *argv[1:]], name
            local_path = local[name]["DeployTarget"]["ReadinessProbe"]["httpGet"]["path"]
            assert container["readinessProbe"]["httpGet"]["path"] == local_path, name
            assert manifest["DeployTarget"]["imageMaps"] == ["conceptor-app"], name
    assert any(o["kind"] == "Namespace" for o in _objects(k8s["uncategorized"]))
    (keycloak,) = [o for o in _objects(k8s["localdev-keycloak"]) if o["kind"] == "Deployment"]
    args = keycloak["spec"]["template"]["spec"]["containers"][0]["args"]
    admin_port = Settings(port_prefix=PREFIX).port("keycloak")
    assert f"--hostname-admin=http://localhost:{admin_port}" in args
    assert "--hostname=http://localdev-keycloak:8080" in args
    # Outside Tilt the API runs on the host: Keycloak names itself after each request's URL.
    outside = modes[("k8s", "dev-outside-tilt")]["localdev-keycloak"]
    (keycloak,) = [o for o in _objects(outside) if o["kind"] == "Deployment"]
    args = keycloak["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--hostname")]
    assert args[0] == "start-dev"


def test_app_image_live_updates_code_and_reinstalls_on_pyproject(
    modes: dict[tuple[str, str], Manifests],
) -> None:
    """live_update syncs the package and reinstalls when pyproject.toml changes."""
    k8s = modes[("k8s", "dev-in-tilt")]
    (image,) = k8s["worker-core-0"]["ImageTargets"]
    spec = image["LiveUpdateSpec"]
    assert {"localPath": "conceptor", "containerPath": "/app/conceptor"} in spec["syncs"]
    reinstall = [
        e for e in spec["execs"] if e["args"][-1] == "pip install -c requirements.lock -e ."
    ]
    assert len(reinstall) == 1
    assert str(REPO_ROOT / "pyproject.toml") in reinstall[0]["triggerPaths"]
    build = image["BuildDetails"]
    assert build["dockerfileContents"] == (REPO_ROOT / "_dev-env" / "Dockerfile").read_text()
    (temporal,) = k8s["localdev-temporal"]["ImageTargets"]
    assert temporal["selector"] == "conceptor-temporal"
