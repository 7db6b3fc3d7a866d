"""The real `tilt ci` refuses a bad environment file before any process starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool

pytestmark = pytest.mark.integration

PREFIX = "495"  # nothing listens there: a started service would show in its localdev dir
TILT_API_PORT = "49599"
BAD_FILE = """\
apiVersion: conceptor/v1
databases:
  - name: billing
    migrations: billing/migrations
queues:
  - {name: core, declaration: conceptor.workers.declarations:CORE}
steps:
  - {name: topics, run: team_steps:create_topics, after: [topics]}
"""


def test_tilt_ci_refuses_a_bad_file_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "environment.yaml"
    bad.write_text(BAD_FILE)
    (tmp_path / "team_steps.py").write_text("def create_topics(settings):\n    return None\n")
    localdev = tmp_path / "localdev"
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TILT_", "KUBE", "CENTRAL_"))}
    env.update(
        PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp_path),  # Tilt keeps its own state under $HOME: not the developer's
        CONCEPTOR_TOOLS_DIR=str(Settings().tools_dir),
        CONCEPTOR_ENVIRONMENT_FILE=str(bad),
        CENTRAL_LOCALDEV_DIR=str(localdev),
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
        TILT_INFRA="local",
        TILT_PORT_PREFIX=PREFIX,
    )
    tilt = cached_tool("tilt", "TILT_VERSION", "bin/tilt")
    result = subprocess.run(
        [str(tilt), "ci", "--port", TILT_API_PORT, "-f", str(REPO_ROOT / "Tiltfile")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    refusal = (
        f"Error in fail: {bad} is refused (2 problem(s)):\n"
        "  databases[0].migrations: migrations folder 'billing/migrations' does not exist "
        f"({tmp_path.resolve() / 'billing' / 'migrations'}); create the folder or correct the "
        "path (relative to the environment file's folder)\n"
        "  steps[0].after[0]: the steps wait for each other in a cycle: topics after topics; "
        "remove one of these `after:` entries\n"
    )
    assert refusal in out, out
    # The Tiltfile stopped at its preflight: no tool check, no resource, no service's data.
    assert "localdev-" not in out, out
    assert not localdev.exists()


TEAM_FILE = """\
apiVersion: conceptor/v1
queues:
  - {name: core, declaration: conceptor.workers.declarations:CORE}
  - {name: media, declaration: services.central.queue:MEDIA, workers: 0}
  - name: billing
    workers: 1
    declaration: billing_team:QUEUE
    resources: {cpu: 250m, memory: 128Mi}
"""
TEAM_MODULE = """\
class Queue:
    def workflows(self):
        return []

    def activities(self, settings):
        return []


QUEUE = Queue()
"""
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


def _tiltfile_result(
    tmp_path: Path, infra: str, team_file: str = TEAM_FILE, **extra: str
) -> dict[str, dict[str, Any]]:
    """`tilt alpha tiltfile-result` with the team's environment file: {resource: manifest}."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    file = tmp_path / "environment.yaml"
    file.write_text(team_file)
    (tmp_path / "billing_team.py").write_text(TEAM_MODULE)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TILT_", "KUBE", "CENTRAL_"))}
    env.update(
        PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp_path),
        CONCEPTOR_TOOLS_DIR=str(Settings().tools_dir),
        CONCEPTOR_ENVIRONMENT_FILE=str(file),
        CENTRAL_LOCALDEV_DIR=str(tmp_path / "localdev"),
        KUBECONFIG=str(kubeconfig),
        TILT_INFRA=infra,
        TILT_PORT_PREFIX=PREFIX,
        **extra,
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
    assert result.returncode == 0, result.stderr
    return {m["Name"]: m for m in json.loads(result.stdout)["Manifests"]}


def test_tilt_makes_the_files_queues_worker_resources(tmp_path: Path) -> None:
    """worker-billing-N from the file's queue: its count (or --billing-workers / env), command,
    probe and links on the second block's ports; media at the file's 0 workers."""
    base = int(PREFIX) * 100
    second = (int(PREFIX) + 1) * 100  # the third queue's slot: the next prefix's first 20
    local = _tiltfile_result(tmp_path / "local", "local")
    workers = sorted(n for n in local if n.startswith("worker-"))
    assert workers == ["worker-billing-0", "worker-core-0"]
    billing = local["worker-billing-0"]
    assert billing["Labels"] == {"01-worker": "01-worker"}
    assert billing["ResourceDependencies"] == ["localdev-temporal"]
    argv = billing["DeployTarget"]["ServeCmd"]["Argv"]
    assert argv[-4:] == ["worker", "billing", "--index", "0"]
    assert billing["DeployTarget"]["ReadinessProbe"]["httpGet"]["port"] == second
    links = [
        (link["Name"], link["URL"]["Host"] + link["URL"]["Path"])
        for link in billing["DeployTarget"]["Links"]
    ]
    assert links == [
        ("health", f"localhost:{second}/healthz"),
        ("metrics", f"localhost:{second}/metrics"),
    ]
    core = local["worker-core-0"]
    assert core["DeployTarget"]["ReadinessProbe"]["httpGet"]["port"] == base + 30

    more = _tiltfile_result(tmp_path / "more", "local", TILT_WORKERS_BILLING="3")
    assert sorted(n for n in more if n.startswith("worker-billing-")) == [
        "worker-billing-0",
        "worker-billing-1",
        "worker-billing-2",
    ]
    probe = more["worker-billing-2"]["DeployTarget"]["ReadinessProbe"]["httpGet"]
    assert probe["port"] == second + 2


def test_k8s_mode_deploys_the_files_queue_with_its_resources(tmp_path: Path) -> None:
    """In k8s mode worker-billing-0 is a Deployment with the file's resources, port-forwarded."""
    k8s = _tiltfile_result(tmp_path, "k8s")
    billing = k8s["worker-billing-0"]
    objects = [o for o in yaml.safe_load_all(billing["DeployTarget"]["yaml"]) if o]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["conceptor", "worker", "billing", "--index", "0"]
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "128Mi"}
    second = (int(PREFIX) + 1) * 100
    assert container["ports"] == [{"name": "http", "containerPort": second}]
    forwards = billing["DeployTarget"]["portForwardTemplateSpec"]["forwards"]
    assert [f["localPort"] for f in forwards] == [second]


def test_k8s_mode_applies_nothing_of_a_service_turned_off(tmp_path: Path) -> None:
    """`services: {mailpit: false, db-tools: false}`: no resource and no object of either in
    the cluster's manifests; the PostgreSQL Secret the app pods read is still applied."""
    off = TEAM_FILE + "services: {mailpit: false, db-tools: false}\n"
    k8s = _tiltfile_result(tmp_path, "k8s", team_file=off)
    assert not [n for n in k8s if "mailpit" in n or "db-tools" in n], sorted(k8s)
    names = {
        (o["kind"], o["metadata"]["name"])
        for m in k8s.values()
        for o in yaml.safe_load_all(m["DeployTarget"].get("yaml") or "")
        if o
    }
    assert not [n for n in names if "mailpit" in n[1] or "db-tools" in n[1]], sorted(names)
    assert ("Secret", "localdev-postgres") in names
    assert ("Deployment", "localdev-keycloak") in names  # what stays on is still applied


def test_k8s_mode_db_tools_browses_every_declared_database(tmp_path: Path) -> None:
    """The database browser's pod lists the file's databases, as local mode's does."""
    (tmp_path / "billing-migrations").mkdir(parents=True)
    central = REPO_ROOT / "services" / "central" / "migrations"
    two = TEAM_FILE + (
        "databases:\n"
        f"  - {{name: conceptor, migrations: {central}}}\n"
        "  - {name: billing, migrations: billing-migrations}\n"
    )
    k8s = _tiltfile_result(tmp_path, "k8s", team_file=two)
    objects = [o for o in yaml.safe_load_all(k8s["db-tools"]["DeployTarget"]["yaml"]) if o]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DB_TOOLS_DATABASES"] == "conceptor,billing"
