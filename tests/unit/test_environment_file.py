"""The environment file: each refusal with its exact message, the default file, its schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema  # dev: kubernetes-validate's, which checks the k8s manifests the same way
import pytest
import yaml
from typer.testing import CliRunner

from conceptor.activities.buckets import desired_buckets, parse_buckets_file
from conceptor.cli import app
from conceptor.platform import environment
from conceptor.platform.devservices import SERVICES
from conceptor.platform.environment import EnvironmentFileError, check
from conceptor.platform.settings import REPO_ROOT, Settings
from tests.shipped import ALL_QUEUES, ALL_STEPS

# A small sound file: the tests below each break one thing in it.
BASE: dict[str, Any] = {
    "apiVersion": "conceptor/v1",
    "databases": [{"name": "app", "migrations": "app-migrations"}],
    "realms": [{"name": "partners", "file": "partners.json"}],
    "buckets": [{"name": "invoices", "policy": "private"}],
    "queues": [{"name": "core", "declaration": "conceptor.workers.declarations:CORE"}],
    "steps": [{"name": "topics", "run": "team_steps:create_topics", "after": ["wait_for_redis"]}],
}
FOLDER_FIX = "create the folder or correct the path (relative to the environment file's folder)"
TEAM_STEPS = "def create_topics(settings):\n    return None\n"


def _write(folder: Path, doc: dict[str, Any] | str) -> Path:
    (folder / "app-migrations").mkdir(exist_ok=True)
    (folder / "partners.json").write_text(json.dumps({"realm": "partners"}))
    (folder / "team_steps.py").write_text(TEAM_STEPS)
    file = folder / "environment.yaml"
    file.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return file


def _problems(folder: Path, doc: dict[str, Any] | str, *, imports: bool = False) -> list[str]:
    with pytest.raises(EnvironmentFileError) as caught:
        check(_write(folder, doc), imports=imports)
    return [str(p) for p in caught.value.problems]


def _changed(**sections: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(sections)
    return doc


def test_the_base_file_passes_with_its_imports(tmp_path: Path) -> None:
    env = check(_write(tmp_path, BASE), imports=True)
    assert [d.name for d in env.databases] == ["app"]
    assert env.steps[0].after == ["wait_for_redis"]


def test_an_unknown_key_is_refused_with_the_keys_known_there(tmp_path: Path) -> None:
    doc = _changed(databases=[{"name": "app", "migrations": "app-migrations", "colour": "red"}])
    assert _problems(tmp_path, doc) == [
        "databases[0].colour: unknown key 'colour'; remove it or correct its spelling; known "
        "keys here: name, migrations, owner, seed (a note may use an `x-` key)"
    ]


def test_x_keys_are_free_form_notes(tmp_path: Path) -> None:
    doc = _changed(databases=[{"name": "app", "migrations": "app-migrations", "x-team": "b"}])
    doc["x-owner"] = {"anything": [1, 2]}
    assert check(_write(tmp_path, doc), imports=False).databases[0].name == "app"


def test_an_unknown_top_level_key_and_version(tmp_path: Path) -> None:
    doc = _changed(apiVersion="conceptor/v9", databse=[])
    assert _problems(tmp_path, doc) == [
        "apiVersion: 'conceptor/v9' is not a version this platform reads; set apiVersion: "
        "conceptor/v1",
        "databse: unknown key 'databse'; remove it or correct its spelling; known keys here: "
        "apiVersion, services, databases, realms, buckets, queues, steps, api (a note may use an "
        "`x-` key)",
    ]


def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    text = "apiVersion: conceptor/v1\nqueues: []\nqueues:\n  - {name: core}\n"
    assert _problems(tmp_path, text) == [
        "queues: key 'queues' appears twice (lines 2 and 3); YAML would keep only the last; "
        "merge the two into one"
    ]


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    assert _problems(tmp_path, "apiVersion: conceptor/v1\nqueues: [\n") == [
        "(top level): not valid YAML at line 3 column 1: expected the node content, but found "
        "'<stream end>'; correct the YAML"
    ]


def test_a_missing_migrations_folder(tmp_path: Path) -> None:
    doc = _changed(
        databases=[
            {"name": "app", "migrations": "app-migrations"},
            {"name": "billing", "migrations": "billing/migrations"},
            {"name": "ledger", "migrations": ["app-migrations", "ledger/sql"]},
        ]
    )
    assert _problems(tmp_path, doc) == [
        f"databases[1].migrations: migrations folder 'billing/migrations' does not exist "
        f"({tmp_path.resolve() / 'billing' / 'migrations'}); {FOLDER_FIX}",
        f"databases[2].migrations[1]: migrations folder 'ledger/sql' does not exist "
        f"({tmp_path.resolve() / 'ledger' / 'sql'}); {FOLDER_FIX}",
    ]


def test_a_missing_realm_file_and_a_realm_of_another_name(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text(json.dumps({"realm": "technova"}))
    doc = _changed(
        realms=[
            {"name": "partners", "file": "realms/partners.json"},
            {"name": "staff", "file": "other.json"},
        ]
    )
    assert _problems(tmp_path, doc) == [
        f"realms[0].file: realm file 'realms/partners.json' does not exist "
        f"({tmp_path.resolve() / 'realms' / 'partners.json'}); export the realm to that file or "
        "correct the path (relative to the environment file's folder)",
        "realms[1].name: 'staff', but other.json holds realm 'technova'; make the name and the "
        "file's `realm` agree",
    ]


def test_a_queue_module_that_does_not_import(tmp_path: Path) -> None:
    (tmp_path / "billing_worker.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "reports.py").write_text("QUEUE = object()\n")
    doc = _changed(
        queues=[
            *BASE["queues"],
            {"name": "billing", "declaration": "billing_worker:QUEUE"},
            {"name": "reports", "declaration": "reports:QUEUE"},
            {"name": "mail", "declaration": "reports:MISSING"},
            {"name": "ledger", "entry_point": "ledger"},
        ]
    )
    assert _problems(tmp_path, doc, imports=True) == [
        "queues[1].declaration: importing billing_worker:QUEUE failed: ModuleNotFoundError: No "
        "module named 'no_such_dependency_xyz'; correct the module's name, or make it "
        "importable from the repository root or the environment file's folder",
        "queues[2].declaration: reports:QUEUE has no callable workflows or activities; point it "
        "at an object with workflows() and activities(settings), e.g. a "
        "conceptor.workers.declarations.QueueDeclaration",
        "queues[3].declaration: module reports has no attribute 'MISSING'; correct the "
        "attribute after the colon",
        "queues[4].entry_point: no installed package publishes entry point 'ledger' in group "
        "conceptor.queues; install the package that publishes it (pip install -e PATH), or "
        "give `module:attribute` instead",
    ]


def test_a_team_queue_outside_conceptor_imports_from_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "billing_worker.py").write_text(
        "class Queue:\n"
        "    def workflows(self):\n        return []\n"
        "    def activities(self, settings):\n        return []\n"
        "QUEUE = Queue()\n"
    )
    doc = _changed(
        queues=[*BASE["queues"], {"name": "billing", "declaration": "billing_worker:QUEUE"}]
    )
    assert [q.name for q in check(_write(tmp_path, doc), imports=True).queues] == [
        "core",
        "billing",
    ]


def test_a_queue_needs_one_source_and_a_worker_count_in_range(tmp_path: Path) -> None:
    doc = _changed(
        queues=[
            {"name": "core", "declaration": "conceptor.workers.declarations:CORE", "workers": 21},
            {"name": "billing"},
        ]
    )
    assert _problems(tmp_path, doc) == [
        "queues[0].workers: Input should be less than or equal to 20; correct it (see "
        "environment.schema.json)",
        "queues[1]: give exactly one of `declaration` (module:attribute) or `entry_point`; "
        "correct it (see environment.schema.json)",
    ]


def test_wrong_types_are_named_once_per_place(tmp_path: Path) -> None:
    doc = _changed(
        databases=[{"name": "app", "migrations": 5}],
        queues=[{**BASE["queues"][0], "blocking": {"kind": "fork", "pool_size": 2}}],
        steps={},
    )
    assert _problems(tmp_path, doc) == [
        "databases[0].migrations: Input should be a valid string or a valid list; correct it "
        "(see environment.schema.json)",
        "queues[0].blocking.kind: Input should be 'thread' or 'process'; correct it (see "
        "environment.schema.json)",
        "steps: Input should be a valid list; correct it (see environment.schema.json)",
    ]


def test_a_step_after_a_step_that_does_not_exist(tmp_path: Path) -> None:
    doc = _changed(
        steps=[{"name": "topics", "run": "team_steps:create_topics", "after": ["kafka"]}]
    )
    assert _problems(tmp_path, doc) == [
        "steps[0].after[0]: no step named 'kafka'; name a step of this file (topics) or a "
        "built-in step (wait_for_postgres, migrate_postgres:app, wait_for_redis, wait_for_minio, "
        "ensure_buckets, wait_for_keycloak, import_realm:partners)"
    ]


def test_a_cycle_among_steps(tmp_path: Path) -> None:
    run = "team_steps:create_topics"
    doc = _changed(
        steps=[
            {"name": "a", "run": run, "after": ["migrate_postgres:app", "c"]},
            {"name": "b", "run": run, "after": ["a"]},
            {"name": "c", "run": run, "after": ["b"]},
            {"name": "d", "run": run, "after": ["d"]},
        ]
    )
    assert _problems(tmp_path, doc) == [
        "steps[1].after[0]: the steps wait for each other in a cycle: a after c after b after a; "
        "remove one of these `after:` entries",
        "steps[3].after[0]: the steps wait for each other in a cycle: d after d; remove one of "
        "these `after:` entries",
    ]


def test_a_step_that_does_not_import(tmp_path: Path) -> None:
    doc = _changed(steps=[{"name": "topics", "run": "team_steps:create_topiks"}])
    assert _problems(tmp_path, doc, imports=True) == [
        "steps[0].run: module team_steps has no attribute 'create_topiks'; correct the "
        "attribute after the colon"
    ]


def test_two_objects_with_one_name(tmp_path: Path) -> None:
    core = BASE["queues"][0]
    doc = _changed(
        databases=[
            {"name": "app", "migrations": "app-migrations"},
            {"name": "app", "migrations": "app-migrations"},
        ],
        buckets=[{"name": "invoices"}, {"name": "invoices"}],
        queues=[core, {**core, "name": "media"}, {**core, "name": "media"}],
        steps=[{"name": "ensure_buckets", "run": "team_steps:create_topics"}],
    )
    assert _problems(tmp_path, doc) == [
        "databases[1].name: a second database named 'app' (the first is databases[0]); give "
        "each database its own name",
        "buckets[1].name: a second bucket named 'invoices' (the first is buckets[0]); give each "
        "bucket its own name",
        "queues[2].name: a second queue named 'media' (the first is queues[1]); give each queue "
        "its own name",
        "steps[0].name: 'ensure_buckets' is a built-in step's name; give the step a name of its "
        "own",
    ]


def test_names_each_object_kind_can_carry(tmp_path: Path) -> None:
    doc = _changed(buckets=[{"name": "Invoices"}], queues=[{**BASE["queues"][0], "name": "core_q"}])
    assert _problems(tmp_path, doc) == [
        "buckets[0].name: 'Invoices' does not match ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$; rename "
        "it (see environment.schema.json)",
        "queues[0].name: 'core_q' does not match ^[a-z][a-z0-9-]{0,39}$; rename it (see "
        "environment.schema.json)",
    ]


def test_services_turned_off_under_what_needs_them(tmp_path: Path) -> None:
    doc = _changed(services={"temporal": False, "minio": False, "postgres": False}, queues=[])
    assert _problems(tmp_path, doc) == [
        "services.temporal: the platform runs on Temporal: provisioning and every worker need "
        "it; set services.temporal: true",
        "databases: 1 declared, but services.postgres is off; turn services.postgres on, or "
        "remove the databases",
        "buckets: 1 declared, but services.minio is off; turn services.minio on, or remove the "
        "buckets",
        "services.db-tools: the database browser needs postgres, which is off; set "
        "services.db-tools: false, or turn services.postgres on",
        "queues: the platform's queue 'core' is not declared (provisioning runs on it); add a "
        "queue named core (declaration: conceptor.workers.declarations:CORE)",
    ]


def test_a_service_turned_off_drops_its_builtin_steps(tmp_path: Path) -> None:
    doc = _changed(services={"redis": False})
    assert _problems(tmp_path, doc) == [
        "steps[0].after[0]: no step named 'wait_for_redis'; name a step of this file (topics) "
        "or a built-in step (wait_for_postgres, migrate_postgres:app, wait_for_minio, "
        "ensure_buckets, wait_for_keycloak, import_realm:partners)"
    ]


# ----- the command ----------------------------------------------------------------------------


def test_env_check_exits_1_with_the_problems_and_0_with_a_summary(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = _write(tmp_path, _changed(steps=[{"name": "a", "run": "m:f", "after": ["a"]}]))
    result = runner.invoke(app, ["env", "check", str(bad), "--no-imports"])
    assert result.exit_code == 1
    assert result.output == (
        f"{bad} is refused (1 problem(s)):\n"
        "  steps[0].after[0]: the steps wait for each other in a cycle: a after a; remove one of "
        "these `after:` entries\n"
    )
    good = runner.invoke(app, ["env", "check"])
    assert good.exit_code == 0, good.output
    assert good.output == (
        f"environment ok: {environment.DEFAULT_FILE} (conceptor/v1)\n"
        "databases: conceptor (seed: media_assets insert-missing)\n"
        "realms:    technova\n"
        "buckets:   media (seed: ../services/central/seed/media insert-missing), thumbnails "
        "(seed: ../services/central/seed/thumbnails insert-missing)\n"
        "queues:    core x1, media x1\n"
        "steps:     none\n"
        "services:  postgres, redis, temporal, keycloak, minio, mailpit, front-door, db-tools\n"
    )


# ----- the default file and the schema ----------------------------------------------------------


def test_the_default_file_describes_todays_stack() -> None:
    """The platform's defaults name no application: the shipped file says what today's stack
    holds, and what settings derive from it is what they held before."""
    env = check(environment.DEFAULT_FILE)  # imports too
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    folder = environment.DEFAULT_FILE.parent
    central = REPO_ROOT / "services" / "central"

    [db] = env.databases
    assert (db.name, db.owner) == (settings.postgres_db, None)
    assert [(folder / m).resolve() for m in db.migration_folders] == [central / "migrations"]
    [realm] = env.realms
    assert (settings.realm_name, settings.realm_file) == (
        "technova",
        REPO_ROOT / "_dev-env" / "realms" / "technova.json",
    )
    assert (realm.name, (folder / realm.file).resolve()) == (
        settings.realm_name,
        settings.realm_file,
    )

    # Buckets: as provisioning built them from the old CENTRAL_BUCKETS default and buckets.json.
    buckets_file = REPO_ROOT / "_dev-env" / "buckets.json"
    today = desired_buckets(
        buckets_file,
        parse_buckets_file(buckets_file, buckets_file.read_text()),
        {"media": "private", "thumbnails": "public-read"},
    )
    assert [b.model_dump(exclude={"seed"}) for b in env.buckets] == [
        b.model_dump(exclude={"source"}) for b in today
    ]
    # The example application's seed data (README "Seed data").
    seed = central / "seed"
    assert [((folder / s.file).resolve(), s.key, s.mode) for s in db.seed] == [
        (seed / "media_assets.yaml", ["original_key"], "insert-missing")
    ]
    assert [
        (b.name, (folder / b.seed.folder).resolve(), b.seed.mode)
        for b in env.buckets
        if b.seed is not None
    ] == [
        ("media", seed / "media", "insert-missing"),
        ("thumbnails", seed / "thumbnails", "insert-missing"),
    ]

    assert [q.name for q in env.queues] == list(ALL_QUEUES) == ["core", "media"]
    # The platform's queue by its declaration; the example service's by its own package's.
    assert [q.declaration for q in env.queues] == [
        "conceptor.workers.declarations:CORE",
        "services.central.queue:MEDIA",
    ]
    # What the per-queue settings' defaults were before the file held them.
    assert [
        (
            q.workers,
            q.concurrency.activities,
            q.concurrency.workflow_tasks,
            q.resources.model_dump() if q.resources else None,
            (q.blocking.kind, q.blocking.pool_size) if q.blocking else None,
        )
        for q in env.queues
    ] == [
        (1, 50, 20, {"cpu": "500m", "memory": "256Mi"}, None),
        (1, 4, 10, {"cpu": "1", "memory": "512Mi"}, ("thread", 4)),
    ]

    assert env.services.enabled() == list(SERVICES)
    assert env.steps == []
    # The file's built-in steps, without the object each one is for, are today's steps.
    assert sorted({s.partition(":")[0] for s in env.builtin_steps()}) == sorted(
        {s.partition(":")[0] for s in ALL_STEPS}
    )


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = environment.SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == environment.schema_text(), (
        "the schema is stale: run `conceptor env schema --write`"
    )
    first = environment.DEFAULT_FILE.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=./{environment.SCHEMA_FILE.name}"


def test_the_schema_accepts_the_default_file_and_refuses_unknown_keys() -> None:
    schema = environment.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    doc = yaml.safe_load(environment.DEFAULT_FILE.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(doc)) == []
    doc["queues"][1]["x-note"] = "free-form"
    assert list(validator.iter_errors(doc)) == []
    doc["queues"][1]["workerz"] = 2
    [error] = validator.iter_errors(doc)
    assert list(error.absolute_path) == ["queues", 1]
    assert error.message == "'workerz' does not match any of the regexes: '^x-'"
