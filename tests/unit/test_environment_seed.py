"""Seed data in the environment file: each refusal of `env check` with its exact message, and
the seed step the graph gains only for a database that declares seed data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conceptor.platform.environment import EnvironmentFileError, check, summary
from conceptor.stack_graph import environment_graph
from tests.shipped import DEFAULT_GRAPH


def _file(folder: Path, seeds: list[dict[str, Any]], second: list[dict[str, Any]]) -> Path:
    (folder / "m").mkdir(exist_ok=True)
    (folder / "users.csv").write_text("email,name\na@x,A\n")
    (folder / "assets.yaml").write_text("- {title: t, owner_id: a@x}\n")
    doc = {
        "apiVersion": "conceptor/v1",
        "databases": [
            {"name": "app", "migrations": "m", "seed": seeds},
            {"name": "billing", "migrations": "m", "seed": second},
        ],
        "queues": [{"name": "core", "declaration": "conceptor.workers.declarations:CORE"}],
        "services": {"keycloak": False, "minio": False},
    }
    file = folder / "environment.yaml"
    file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return file


USERS = {"table": "users", "file": "users.csv", "key": ["email"]}
ASSETS = {
    "table": "assets",
    "file": "assets.yaml",
    "key": ["owner_id", "title"],
    "mode": "managed",
    "references": {"owner_id": {"table": "users", "key": ["email"]}},
}


def test_seed_declarations_pass_and_add_one_step_per_seeded_database(tmp_path: Path) -> None:
    env = check(_file(tmp_path, [USERS, ASSETS], [USERS]), imports=False)
    assert [(s.table, s.mode) for s in env.databases[0].seed] == [
        ("users", "insert-missing"),
        ("assets", "managed"),
    ]
    graph = environment_graph(env)
    seed, billing = graph.get("seed_postgres"), graph.get("seed_postgres:billing")
    assert seed is not None and billing is not None
    assert (seed.activity, seed.target, seed.after, seed.reconciling) == (
        "seed_postgres",
        None,
        ["migrate_postgres"],
        True,
    )
    assert (billing.target, billing.after) == ("billing", ["migrate_postgres:billing"])
    assert graph.names().index("seed_postgres") > graph.names().index("migrate_postgres")


def test_no_seed_no_step(tmp_path: Path) -> None:
    env = check(_file(tmp_path, [], []), imports=False)
    assert not [n for n in environment_graph(env).names() if n.startswith("seed_postgres")]
    # The shipped file seeds its first database (the example application's media library).
    assert [n for n in DEFAULT_GRAPH.names() if n.startswith("seed_postgres")] == ["seed_postgres"]


def test_a_team_step_may_wait_for_a_seed_step(tmp_path: Path) -> None:
    file = _file(tmp_path, [USERS], [USERS])
    doc = yaml.safe_load(file.read_text())
    doc["steps"] = [{"name": "after_seed", "run": "m:x", "after": ["seed_postgres:app"]}]
    file.write_text(yaml.safe_dump(doc))
    graph = environment_graph(check(file, imports=False))
    step = graph.get("after_seed")
    assert step is not None and step.after == ["seed_postgres"]


def _problems(tmp_path: Path, seeds: list[dict[str, Any]]) -> list[str]:
    with pytest.raises(EnvironmentFileError) as caught:
        check(_file(tmp_path, seeds, []), imports=False)
    return [str(p) for p in caught.value.problems]


def test_missing_file_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, [{**USERS, "file": "nope.csv"}])
    assert problems == [
        f"databases[0].seed[0].file: seed file 'nope.csv' does not exist "
        f"({(tmp_path / 'nope.csv').resolve()}); create it or correct the path (relative to "
        "the environment file's folder)"
    ]


def test_duplicate_table_refused(tmp_path: Path) -> None:
    assert _problems(tmp_path, [USERS, USERS]) == [
        "databases[0].seed[1].table: a second seed of table 'users' (the first is "
        "databases[0].seed[0]); give each table one seed entry"
    ]


def test_reference_to_a_table_not_seeded_refused(tmp_path: Path) -> None:
    assert _problems(tmp_path, [ASSETS]) == [
        "databases[0].seed[0].references.owner_id.table: table 'users' is not seeded in "
        "database 'app'; seed it in the same database, or name a seeded table (assets)"
    ]


def test_reference_naming_another_key_refused(tmp_path: Path) -> None:
    wrong = {**ASSETS, "references": {"owner_id": {"table": "users", "key": ["name"]}}}
    assert _problems(tmp_path, [USERS, wrong]) == [
        "databases[0].seed[1].references.owner_id.key: ['name'] is not the natural key of "
        "'users' (['email']); name the key the referenced table's seed declares"
    ]


def test_unknown_mode_and_empty_key_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, [{**USERS, "mode": "upsert", "key": []}])
    assert len(problems) == 2
    assert problems[0].startswith("databases[0].seed[0].key: List should have at least 1 item")
    assert problems[1].startswith(
        "databases[0].seed[0].mode: Input should be 'insert-missing', 'enforce' or 'managed'"
    )


def test_tables_referencing_each_other_refused(tmp_path: Path) -> None:
    users = {**USERS, "references": {"avatar_id": {"table": "assets", "key": ASSETS["key"]}}}
    assert _problems(tmp_path, [users, ASSETS]) == [
        "databases[0].seed: seeded tables reference each other in a cycle: users -> assets -> "
        "users; seed one of them without the reference (rows are written referenced first)"
    ]


def test_env_check_summary_names_the_seeded_tables(tmp_path: Path) -> None:
    env = check(_file(tmp_path, [USERS, ASSETS], []), imports=False)
    assert summary(env).splitlines()[0] == (
        "databases: app (seed: users insert-missing, assets managed), billing"
    )
