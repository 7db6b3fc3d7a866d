"""The provisioning graph from the environment file: its steps and their order, a workflow
that follows it (a failing step holds back only what waits for it), and realm placeholders
resolved by the names a file uses."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from conceptor.activities import realm_file
from conceptor.activities.custom_steps import NOT_PLANNED, diff_objects, plans
from conceptor.activities.postgres import PostgresActivities
from conceptor.activities.realm_file import load_realm
from conceptor.api.routes.provision import ProvisionRequest
from conceptor.cli import app
from conceptor.client.provisioning import provision_status, start_provision
from conceptor.commands import provision_follow
from conceptor.contracts import (
    CUSTOM_STEP,
    DRIFT_WATCH_WORKFLOW,
    REGISTER_DRIFT_WATCH,
    Change,
    Diff,
    DriftReport,
    ProvisionDefaults,
    ProvisionGraph,
    ReconcileInput,
    StepResult,
    WaitInput,
    build_graph,
)
from conceptor.platform.environment import (
    DEFAULT_FILE,
    FILE_VARIABLE,
    EnvironmentFileError,
    check,
    load,
)
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.stack_graph import environment_graph
from conceptor.workflows.drift import DRIFT_WORKFLOWS
from conceptor.workflows.provision import PROVISIONING_WORKFLOWS
from tests.shipped import ALL_STEPS

TEST_SERVER = REPO_ROOT / ".venv" / "bin" / "temporal-test-server"


def _settings(**overrides: object) -> Settings:
    return Settings(port_prefix="453", **overrides)  # type: ignore[arg-type]


# ----- the graph ------------------------------------------------------------------------------


def test_the_default_file_gives_todays_steps() -> None:
    graph = environment_graph(load(DEFAULT_FILE))
    assert graph == build_graph(
        databases=["conceptor"],
        realms=["technova"],
        seeded=["conceptor"],
        seeded_buckets=["media", "thumbnails"],
    )
    assert graph.names() == list(ALL_STEPS)
    assert graph.reconciling() == [
        "migrate_postgres",
        "seed_postgres",
        "ensure_buckets",
        "seed_bucket:media",
        "seed_bucket:thumbnails",
        "import_realm",
    ]
    assert {s.name: s.after for s in graph.steps} == {
        "wait_for_postgres": [],
        "migrate_postgres": ["wait_for_postgres"],
        "seed_postgres": ["migrate_postgres"],
        "wait_for_redis": [],
        "wait_for_minio": [],
        "ensure_buckets": ["wait_for_minio"],
        "seed_bucket:media": ["ensure_buckets"],
        "seed_bucket:thumbnails": ["ensure_buckets"],
        "wait_for_keycloak": [],
        "import_realm": ["wait_for_keycloak"],
    }
    media = graph.get("seed_bucket:media")
    assert media is not None
    assert (media.activity, media.target, media.service) == ("seed_bucket", "media", None)


def test_each_declared_object_gets_its_step_the_first_keeps_the_plain_name() -> None:
    graph = build_graph(
        databases=["app", "billing"],
        realms=["technova", "partners"],
        custom=[
            ("topics", ["migrate_postgres:app", "import_realm:partners"], True),
            ("notify", ["topics"], False),
        ],
        services={"postgres", "keycloak", "minio"},
    )
    assert [(s.name, s.activity, s.target, s.after) for s in graph.steps] == [
        ("wait_for_postgres", "wait_for_postgres", None, []),
        ("migrate_postgres", "migrate_postgres", None, ["wait_for_postgres"]),
        ("migrate_postgres:billing", "migrate_postgres", "billing", ["wait_for_postgres"]),
        ("wait_for_minio", "wait_for_minio", None, []),
        ("ensure_buckets", "ensure_buckets", None, ["wait_for_minio"]),
        ("wait_for_keycloak", "wait_for_keycloak", None, []),
        ("import_realm", "import_realm", None, ["wait_for_keycloak"]),
        ("import_realm:partners", "import_realm", "partners", ["wait_for_keycloak"]),
        # `migrate_postgres:app` (the first database) is the plain step's alias
        ("topics", CUSTOM_STEP, "topics", ["migrate_postgres", "import_realm:partners"]),
        ("notify", CUSTOM_STEP, "notify", ["topics"]),
    ]
    assert graph.reconciling() == [
        "migrate_postgres",
        "migrate_postgres:billing",
        "ensure_buckets",
        "import_realm",
        "import_realm:partners",
        "topics",
    ]
    assert graph.with_dependencies(["notify"]) == [
        "wait_for_postgres",
        "migrate_postgres",
        "wait_for_keycloak",
        "import_realm:partners",
        "topics",
        "notify",
    ]
    assert graph.get("import_realm:partners") is not None
    assert graph.get("import_realm:partners").long_running  # type: ignore[union-attr]
    assert graph.get("nope") is None


def _absolute_seeds(doc: dict[str, Any]) -> None:
    """The shipped file's seed files and folders, named from anywhere (it is copied away)."""
    here = DEFAULT_FILE.parent
    for db in doc["databases"]:
        for seed in db.get("seed", []):
            seed["file"] = str((here / seed["file"]).resolve())
    for bucket in doc["buckets"]:
        if "seed" in bucket:
            bucket["seed"]["folder"] = str((here / bucket["seed"]["folder"]).resolve())


def test_a_step_may_not_take_a_plain_builtin_name(tmp_path: Path) -> None:
    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["databases"][0]["migrations"] = str(REPO_ROOT / "services/central/migrations")
    doc["realms"][0]["file"] = str(REPO_ROOT / "_dev-env/realms/technova.json")
    _absolute_seeds(doc)
    doc["steps"] = [{"name": "migrate_postgres", "run": "m:f"}]
    file = tmp_path / "environment.yaml"
    file.write_text(yaml.safe_dump(doc))
    with pytest.raises(EnvironmentFileError) as info:
        check(file, imports=False)
    assert [str(p) for p in info.value.problems] == [
        "steps[0].name: 'migrate_postgres' is a built-in step's name; give the step a name of "
        "its own"
    ]


# ----- the protocol of a team's step -------------------------------------------------------


def test_which_objects_plan() -> None:
    class Topics:
        def desired(self, ctx: Any) -> dict[str, Any]:
            return {}

        def live(self, ctx: Any) -> dict[str, Any]:
            return {}

        def diff(self, desired: Any, live: Any) -> list[Any]:
            return []

        def apply(self, ctx: Any, changes: Any) -> None:
            return None

    assert plans(Topics())
    assert not plans(lambda ctx: None)
    assert NOT_PLANNED == "runs every time, not planned"


def test_diff_objects_compares_by_name() -> None:
    changes = diff_objects(
        "topic",
        {"orders": {"partitions": 3}, "invoices": {"partitions": 1}, "same": {"p": 1}},
        {"orders": {"partitions": 2}, "same": {"p": 1}, "extra": {}},
    )
    assert [(c.label, c.action, c.fields) for c in changes] == [
        ("topic:orders", "update", ["partitions"]),
        ("topic:invoices", "create", []),
        ("topic:same", "unchanged", []),
    ]


# ----- realm placeholders -----------------------------------------------------------------


def test_placeholders_by_the_names_a_file_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Derived values, a setting by its variable name, the environment, .env.development."""
    dotenv = tmp_path / ".env.development"
    dotenv.write_text("FROM_DOTENV=dotenv value\n")
    monkeypatch.setattr(realm_file, "DOTENV_FILE", dotenv)
    monkeypatch.setenv("FROM_ENVIRONMENT", "environment value")
    path = tmp_path / "partners.json"
    path.write_text(
        json.dumps(
            {
                "realm": "partners",
                "displayName": "${FROM_ENVIRONMENT} / ${FROM_DOTENV}",
                "smtpServer": {"port": "${SMTP_PORT}", "from": "${CENTRAL_MAIL_FROM}"},
            }
        )
    )
    realm = load_realm(path, _settings(mail_from="team@example.test"), "partners")
    assert realm["displayName"] == "environment value / dotenv value"
    assert realm["smtpServer"] == {"port": "45317", "from": "team@example.test"}


def test_an_unresolved_placeholder_names_the_file_and_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realm_file, "DOTENV_FILE", tmp_path / "absent")
    monkeypatch.delenv("PARTNERS_SECRET", raising=False)
    path = tmp_path / "partners.json"
    path.write_text(
        json.dumps({"realm": "partners", "clients": [{"secret": "${PARTNERS_SECRET}"}]})
    )
    with pytest.raises(ApplicationError) as info:
        load_realm(path, _settings(), "partners")
    assert info.value.non_retryable
    assert info.value.message == (
        f"realm file {path} uses unknown placeholder ${{PARTNERS_SECRET}}: neither settings, "
        "the environment nor absent has PARTNERS_SECRET; set it in one of them, or remove it"
    )


def test_a_declared_realm_is_checked_against_its_declared_name(tmp_path: Path) -> None:
    path = tmp_path / "partners.json"
    path.write_text(json.dumps({"realm": "other"}))
    with pytest.raises(ApplicationError) as info:
        load_realm(path, _settings(), "partners")
    assert info.value.message == (
        f"realm file {path} defines realm 'other', but the environment file expects 'partners'"
    )


# ----- the workflow follows the graph --------------------------------------------------------


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    ) as environment:
        yield environment


GRAPH = build_graph(
    databases=["app", "broken", "billing"],
    realms=["technova"],
    custom=[("after_billing", ["migrate_postgres:billing"], False), ("after_all", [], True)],
    services={"postgres", "keycloak"},
)


def graph_activities(calls: list[str], graph: ProvisionGraph) -> list[Callable[..., Any]]:
    """Fakes under the real activity names; `migrate_postgres` of `broken` fails."""

    @activity.defn(name="provision_defaults")
    async def defaults() -> ProvisionDefaults:
        return ProvisionDefaults(step_deadline_seconds=30.0, graph=graph)

    @activity.defn(name=REGISTER_DRIFT_WATCH)
    async def register() -> str:
        return "created"

    def waiting(name: str) -> Callable[..., Any]:
        async def wait(data: WaitInput) -> StepResult:
            calls.append(name)
            return StepResult()

        return activity.defn(name=name)(wait)

    def reconciling(name: str) -> Callable[..., Any]:
        async def run(data: ReconcileInput | None = None) -> StepResult:
            target = data.target if data is not None else None
            plan = bool(data and data.plan)
            calls.append(f"{name}:{target}" + (":plan" if plan else ""))
            if target == "broken":
                raise ApplicationError("migration 0002_b.sql failed", non_retryable=True)
            return StepResult(outcome="created", planned=plan, detail=f"{name} {target}")

        return activity.defn(name=name)(run)

    return [
        defaults,
        register,
        waiting("wait_for_postgres"),
        waiting("wait_for_keycloak"),
        reconciling("migrate_postgres"),
        reconciling("import_realm"),
        reconciling(CUSTOM_STEP),
    ]


async def test_a_failing_step_holds_back_only_what_waits_for_it(
    temporal: WorkflowEnvironment,
) -> None:
    calls: list[str] = []
    queue = f"test-{uuid.uuid4()}"
    workflow_id = f"provision-{uuid.uuid4()}"
    async with Worker(
        temporal.client,
        task_queue=queue,
        workflows=PROVISIONING_WORKFLOWS,
        activities=graph_activities(calls, GRAPH),
    ):
        # No input, as the Web UI starts it: the graph comes from the worker.
        handle = await start_provision(temporal.client, workflow_id=workflow_id, task_queue=queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await provision_status(temporal.client, workflow_id=workflow_id)
    states = {s.step: (s.state, s.error) for s in status.steps}
    assert states == {
        "wait_for_postgres": ("completed", None),
        "migrate_postgres": ("completed", None),
        "migrate_postgres:broken": ("failed", "migration 0002_b.sql failed"),
        "migrate_postgres:billing": ("completed", None),
        "wait_for_keycloak": ("completed", None),
        "import_realm": ("completed", None),
        "after_billing": ("completed", None),
        "after_all": ("completed", None),
    }
    assert status.error == (
        "provisioning failed: migrate_postgres:broken: migration 0002_b.sql failed"
    )
    # The plain steps are called as before (no input); the others name their object.
    assert "migrate_postgres:None" in calls
    assert calls.index("migrate_postgres:billing") < calls.index("custom_step:after_billing")


async def test_a_step_after_a_failed_one_is_skipped_naming_it(
    temporal: WorkflowEnvironment,
) -> None:
    graph = build_graph(
        databases=["app", "broken"],
        realms=[],
        custom=[("one", ["migrate_postgres:broken"], False), ("two", ["one"], False)],
        services={"postgres"},
    )
    calls: list[str] = []
    queue = f"test-{uuid.uuid4()}"
    workflow_id = f"provision-{uuid.uuid4()}"
    async with Worker(
        temporal.client,
        task_queue=queue,
        workflows=PROVISIONING_WORKFLOWS,
        activities=graph_activities(calls, graph),
    ):
        handle = await start_provision(temporal.client, workflow_id=workflow_id, task_queue=queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        status = await provision_status(temporal.client, workflow_id=workflow_id)
    states = {s.step: (s.state, s.error) for s in status.steps}
    assert states["one"] == ("skipped", "not run: migrate_postgres:broken failed")
    assert states["two"] == ("skipped", "not run: migrate_postgres:broken failed")
    assert not [c for c in calls if c.startswith(CUSTOM_STEP)]


async def test_a_plan_passes_plan_and_target_to_every_step(temporal: WorkflowEnvironment) -> None:
    calls: list[str] = []
    queue = f"test-{uuid.uuid4()}"
    graph = build_graph(
        databases=["app", "billing"], realms=[], custom=[("t", [], True)], services={"postgres"}
    )
    async with Worker(
        temporal.client,
        task_queue=queue,
        workflows=PROVISIONING_WORKFLOWS,
        activities=graph_activities(calls, graph),
    ):
        handle = await start_provision(
            temporal.client, plan=True, workflow_id=f"plan-{uuid.uuid4()}", task_queue=queue
        )
        result = await handle.result()
    assert sorted(result.steps) == sorted(graph.names())
    assert sorted(c for c in calls if c.endswith(":plan")) == [
        "custom_step:t:plan",
        "migrate_postgres:None:plan",
        "migrate_postgres:billing:plan",
    ]


async def test_an_unknown_step_is_refused_naming_the_graph(temporal: WorkflowEnvironment) -> None:
    calls: list[str] = []
    queue = f"test-{uuid.uuid4()}"
    async with Worker(
        temporal.client,
        task_queue=queue,
        workflows=PROVISIONING_WORKFLOWS,
        activities=graph_activities(calls, GRAPH),
    ):
        handle = await start_provision(
            temporal.client,
            steps=["migrate_postgres:nope"],
            workflow_id=f"provision-{uuid.uuid4()}",
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert str(getattr(info.value.cause, "message", "")) == (
        "unknown step(s) migrate_postgres:nope; the graph has " + ", ".join(GRAPH.names())
    )
    assert calls == []


# ----- the drift watch follows the graph ---------------------------------------------------


def drift_activities(
    graph: ProvisionGraph, lost: str, calls: list[str]
) -> list[Callable[..., Any]]:
    """Plans: the declared object `lost` holds nothing (every object would be created), the
    others are unchanged; applies record themselves."""

    @activity.defn(name="provision_defaults")
    async def defaults() -> ProvisionDefaults:
        return ProvisionDefaults(step_deadline_seconds=30.0, graph=graph)

    @activity.defn(name=REGISTER_DRIFT_WATCH)
    async def register() -> str:
        return "unchanged"

    def waiting(name: str) -> Callable[..., Any]:
        async def wait(data: WaitInput) -> StepResult:
            return StepResult()

        return activity.defn(name=name)(wait)

    def reconciling(name: str) -> Callable[..., Any]:
        async def run(data: ReconcileInput | None = None) -> StepResult:
            target = data.target if data is not None else None
            plan = bool(data and data.plan)
            calls.append(f"{name}:{target}:{'plan' if plan else 'apply'}")
            action = "create" if target == lost and plan else "unchanged"
            diff = Diff(
                target=f"{name} {target}", changes=[Change(kind="x", name="a", action=action)]
            )
            return StepResult.from_diff(diff, planned=plan)

        return activity.defn(name=name)(run)

    return [
        defaults,
        register,
        waiting("wait_for_postgres"),
        waiting("wait_for_redis"),
        reconciling("migrate_postgres"),
        reconciling(CUSTOM_STEP),
    ]


async def test_the_drift_watch_heals_a_declared_database(temporal: WorkflowEnvironment) -> None:
    """A declared database came back empty: data loss in postgres, healed by a provisioning
    run of just its step and the step it waits for; a team's planning step is watched too."""
    graph = build_graph(
        databases=["app", "billing"],
        realms=[],
        custom=[("topics", ["wait_for_redis"], True)],
        services={"postgres", "redis"},
    )
    calls: list[str] = []
    queue = f"test-{uuid.uuid4()}"
    async with Worker(
        temporal.client,
        task_queue=queue,
        workflows=[*PROVISIONING_WORKFLOWS, *DRIFT_WORKFLOWS],
        activities=drift_activities(graph, "billing", calls),
    ):
        report = await temporal.client.execute_workflow(
            DRIFT_WATCH_WORKFLOW,
            id=f"drift-watch-run-{uuid.uuid4()}",
            task_queue=queue,
            result_type=DriftReport,
        )
    assert report.data_loss == ["postgres"]
    assert [(i.step, i.label) for i in report.items] == [
        ("migrate_postgres:billing", "migrate_postgres:billing x:a")
    ]
    assert report.repaired
    assert sorted(c for c in calls if c.endswith(":plan")) == [
        "custom_step:topics:plan",
        "migrate_postgres:None:plan",
        "migrate_postgres:billing:plan",
    ]
    # Only the lost database's step is applied (after wait_for_postgres).
    assert [c for c in calls if c.endswith(":apply")] == ["migrate_postgres:billing:apply"]


# ----- which migrations a database's step applies ------------------------------------------


def _environment_with_first_database(folder: Path, migrations: list[str]) -> Path:
    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["databases"][0]["migrations"] = migrations
    doc["realms"][0]["file"] = str(REPO_ROOT / "_dev-env/realms/technova.json")
    _absolute_seeds(doc)
    file = folder / "environment.yaml"
    file.write_text(yaml.safe_dump(doc))
    return file


def test_the_first_database_migrates_the_files_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its folders are one set in name order; CENTRAL_MIGRATIONS_DIR, when set, wins."""
    for folder, names in {"a": ["0001_one.sql", "0003_three.sql"], "b": ["0002_two.sql"]}.items():
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_text("SELECT 1;")
    monkeypatch.setenv(FILE_VARIABLE, str(_environment_with_first_database(tmp_path, ["a", "b"])))
    files = PostgresActivities(_settings())._migrations()
    assert [m.name for m in files] == ["0001_one.sql", "0002_two.sql", "0003_three.sql"]
    chosen = PostgresActivities(_settings(migrations_dir=tmp_path / "b"))._migrations()
    assert [m.name for m in chosen] == ["0002_two.sql"]


def test_one_migration_name_in_two_folders_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "0001_one.sql").write_text("SELECT 1;")
    monkeypatch.setenv(FILE_VARIABLE, str(_environment_with_first_database(tmp_path, ["a", "b"])))
    with pytest.raises(ApplicationError) as info:
        PostgresActivities(_settings())._migrations()
    assert info.value.non_retryable
    assert info.value.message == (
        f"migration(s) 0001_one.sql in more than one of {tmp_path / 'a'}, {tmp_path / 'b'}"
    )


# ----- the CLI chooses among the graph's steps ----------------------------------------------


def test_provision_step_takes_the_graphs_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--step migrate_postgres:<database>` of a declared database is passed on; a name the
    graph does not have is refused, naming it."""
    (tmp_path / "billing").mkdir()
    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["databases"][0]["migrations"] = str(REPO_ROOT / "services/central/migrations")
    doc["databases"].append({"name": "billing", "migrations": "billing"})
    doc["realms"][0]["file"] = str(REPO_ROOT / "_dev-env/realms/technova.json")
    _absolute_seeds(doc)
    file = tmp_path / "environment.yaml"
    file.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    started: list[list[str] | None] = []

    async def fake_provision(steps: list[str] | None, wait: bool, timeout: float) -> int:
        started.append(steps)
        return 0

    monkeypatch.setattr(provision_follow, "provision", fake_provision)
    runner = CliRunner()
    ok = runner.invoke(
        app, ["provision", "--step", "migrate_postgres:billing", "--step", "wait_for_postgres"]
    )
    assert ok.exit_code == 0, ok.output
    assert started == [["wait_for_postgres", "migrate_postgres:billing"]]
    bad = runner.invoke(app, ["provision", "--step", "migrate_postgres:nope"])
    assert bad.exit_code == 2
    assert "unknown step(s) migrate_postgres:nope" in " ".join(bad.output.split())


def test_the_api_takes_the_graphs_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /api/provision's `steps`: a declared realm's step is accepted, an unknown name is
    refused as a literal (422 literal_error at body.steps.N, as before)."""
    doc = yaml.safe_load(DEFAULT_FILE.read_text())
    doc["databases"][0]["migrations"] = str(REPO_ROOT / "services/central/migrations")
    doc["realms"][0]["file"] = str(REPO_ROOT / "_dev-env/realms/technova.json")
    _absolute_seeds(doc)
    (tmp_path / "partners.json").write_text(json.dumps({"realm": "partners"}))
    doc["realms"].append({"name": "partners", "file": "partners.json"})
    file = tmp_path / "environment.yaml"
    file.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    request = ProvisionRequest.model_validate({"steps": ["import_realm:partners"]})
    assert request.steps == ["import_realm:partners"]
    with pytest.raises(ValidationError) as info:
        ProvisionRequest.model_validate({"steps": ["import_realm", "format_disk"]})
    assert [(e["type"], e["loc"]) for e in info.value.errors()] == [("literal_error", ("steps", 1))]
