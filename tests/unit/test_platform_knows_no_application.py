"""A team whose stack has none of the example application's names sees nothing of them.

The stack here: one database `billing`, one realm `partners`, the platform's queue and a queue
`billing`. Everything the platform derives from it (settings, steps, queues, CLI options,
manifests, the API's documents, the panel) is checked for the example's names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conceptor import contracts
from conceptor.api.auth import TokenVerifier
from conceptor.api.main import create_app
from conceptor.api.routes.status import PanelStatus
from conceptor.cli import app as cli
from conceptor.client.pollers import declared_queue_names
from conceptor.commands.k8s_manifests import to_yaml, worker_manifests
from conceptor.platform import environment
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.stack_graph import environment_graph, step_names

# The example application's names (services/central and the shipped environment file).
EXAMPLE = re.compile(r"technova|thumbnail|media", re.IGNORECASE)
PANEL = REPO_ROOT / "conceptor" / "api" / "panel"

BILLING = """\
apiVersion: conceptor/v1
services: {redis: false, minio: false, mailpit: false}
databases:
  - name: billing
    migrations: migrations
realms:
  - name: partners
    file: partners.json
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
  - name: billing
    declaration: billing_pkg.queues:BILLING
    workers: 2
"""


@pytest.fixture
def billing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_invoices.sql").write_text("CREATE TABLE invoices (id int);")
    (tmp_path / "partners.json").write_text(json.dumps({"realm": "partners", "enabled": True}))
    file = tmp_path / "environment.yaml"
    file.write_text(BILLING)
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    # A developer's own CENTRAL_* knobs must not leak into what is checked here.
    for name in list(os.environ):
        if name.startswith("CENTRAL_"):
            monkeypatch.delenv(name)
    return file


def _example_names(text: str) -> list[str]:
    return sorted({m.group(0).lower() for m in EXAMPLE.finditer(text)})


def test_settings_derive_from_the_file_and_name_no_application(billing: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    dumped = settings.model_dump(mode="json")
    assert _example_names(json.dumps(dumped)) == []
    # The first realm is the file's; the rest that the file declares is read from it directly.
    assert (settings.realm_name, settings.realm_file) == (
        "partners",
        (billing.parent / "partners.json").resolve(),
    )
    assert settings.keycloak_issuer.endswith("/realms/partners")
    assert (settings.migrations_dir, settings.buckets) == (None, {})
    assert (
        settings.worker_max_concurrent_activities,
        settings.worker_max_concurrent_workflow_tasks,
        settings.worker_pool_kind,
        settings.worker_pool_size,
        settings.worker_resources,
    ) == ({}, {}, {}, {}, {})
    # An explicit realm still wins over the file's (tests and one-off runs set it).
    given = Settings(_env_file=None, realm_name="partners-2")  # type: ignore[call-arg]
    assert (given.realm_name, given.realm_file) == ("partners-2", settings.realm_file)


def test_steps_queues_and_contracts_name_no_application(billing: Path) -> None:
    env = environment.check(billing, imports=False)
    steps = environment_graph(env).names()
    assert steps == [
        "wait_for_postgres",
        "migrate_postgres",
        "wait_for_keycloak",
        "import_realm",
    ]
    assert step_names(billing) == steps
    assert declared_queue_names() == ["core", "billing"]
    # The platform's own names: the core queue and an empty graph until the worker reads one.
    assert contracts.CORE_QUEUE == "core"
    assert [n for n in dir(contracts) if EXAMPLE.search(n)] == []
    assert contracts.ProvisionDefaults(step_deadline_seconds=1.0).graph.steps == []


@pytest.mark.parametrize(
    "command",
    [
        ["dev", "manifests", "workers", "--help"],
        ["dev", "ports", "--help"],
        ["provision", "--help"],
        ["worker", "--help"],
    ],
)
def test_cli_options_name_no_application(billing: Path, command: list[str]) -> None:
    result = CliRunner().invoke(cli, command, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert _example_names(result.output) == []


def test_worker_manifests_for_the_files_queues(billing: Path) -> None:
    objects = worker_manifests(Settings(_env_file=None), image="app:1")  # type: ignore[call-arg]
    names = [o.metadata.name for o in objects]
    assert names == ["worker-core-0", "worker-billing-0", "worker-billing-1"]
    assert _example_names(to_yaml(objects)) == []


def test_the_api_documents_and_the_panel_name_no_application(billing: Path) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    api = create_app(settings)
    assert api.state.panel_card is None  # no `api.panel_card`: no card
    document: dict[str, Any] = TestClient(api).get("/api/openapi.json").json()
    assert _example_names(json.dumps(document)) == []
    scheme = document["components"]["securitySchemes"]["keycloak"]
    assert scheme["description"] == (
        "An access token of realm(s) partners (password grant, client conceptor-api)."
    )
    assert _example_names(json.dumps(PanelStatus.model_json_schema())) == []
    assert PanelStatus(provision=None, queues=None).model_dump()["card"] is None
    verifier = TokenVerifier(settings, httpx.AsyncClient())
    assert verifier.realms == ["partners"]
    # The panel's files: a card appears only with the title the file declares.
    for name in ("index.html", "panel.js", "panel.css"):
        assert _example_names((PANEL / name).read_text(encoding="utf-8")) == [], name
