"""Seed data as a reconciled step, on the real servers: a declared database's seed files
created after its migrations, unchanged on a re-run (no row written), a hand edit left alone
under insert-missing and repaired under enforce, a row dropped from a managed file deleted
while a hand-inserted one stays, foreign keys by natural key, CSV quoting and non-ASCII, and
a renamed column refused before any write, naming file, row and column."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from conceptor.client.plan import apply_selection, make_plan
from conceptor.client.provisioning import (
    provision_status,
    start_provision,
    start_reset_postgres,
)
from conceptor.contracts import PlanDigests, ProvisionResult
from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.temporal import connect
from tests.integration.provision_support import (
    MIGRATIONS,
    ProvisionEnv,
    in_process_worker,
    isolated_env,
)
from tests.integration.test_provision_graph import drop_databases

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE users (
    id     serial PRIMARY KEY,
    email  text NOT NULL UNIQUE,
    name   text NOT NULL,
    bio    text,
    active boolean NOT NULL DEFAULT true
);
CREATE TABLE assets (
    id       bigserial PRIMARY KEY,
    owner_id integer NOT NULL REFERENCES users (id),
    title    text NOT NULL,
    size     integer,
    meta     jsonb,
    UNIQUE (owner_id, title)
);
CREATE TABLE tags (id serial PRIMARY KEY, label text NOT NULL UNIQUE, note text);
"""
# Quoted commas, doubled quotes, a line break inside a field, non-ASCII, an empty field (NULL).
USERS_CSV = (
    "email,name,bio,active\r\n"
    'zoe@example.com,"Zoë, the ""first""","line one\nline two — ok",true\r\n'
    "bo@example.com,Bo Ström,,false\r\n"
)
ASSETS = [
    {"owner_id": "zoe@example.com", "title": "logo", "size": 120, "meta": {"w": 64}},
    {"owner_id": "zoe@example.com", "title": "banner", "size": 900},
    {"owner_id": "bo@example.com", "title": "logo", "size": 50},
]
TAGS = [{"label": "red", "note": "from the file"}, {"label": "blue"}]


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    async with isolated_env(local_stack.settings, tmp_path / "env") as environment:
        yield environment


class Stack:
    """A declared database `seeded_<tag>` with three seeded tables, in a folder of files."""

    def __init__(self, env: ProvisionEnv, folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.db = f"seeded_{uuid.uuid4().hex[:8]}"
        self.steps = ["wait_for_postgres", f"migrate_postgres:{self.db}", self.step]
        (folder / "migrations").mkdir(parents=True)
        (folder / "migrations" / "0001_schema.sql").write_text(SCHEMA)
        (folder / "users.csv").write_text(USERS_CSV, encoding="utf-8")
        self.write("assets.yaml", ASSETS)
        self.write("tags.json", TAGS)
        self.file = folder / "environment.yaml"
        self.file.write_text(
            f"""apiVersion: conceptor/v1
services: {{keycloak: false, minio: false, redis: false}}
databases:
  - name: {env.database}
    migrations: {folder / "migrations"}
  - name: {self.db}
    migrations: migrations
    seed:
      - {{table: users, file: users.csv, key: [email], mode: enforce}}
      - table: assets
        file: assets.yaml
        key: [owner_id, title]
        mode: managed
        references: {{owner_id: {{table: users, key: [email]}}}}
      - {{table: tags, file: tags.json, key: [label]}}
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
"""
        )

    @property
    def step(self) -> str:
        return f"seed_postgres:{self.db}"

    def write(self, name: str, rows: list[dict[str, Any]]) -> None:
        (self.folder / name).write_text(json.dumps(rows) if name.endswith(".json") else _yaml(rows))

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.env.settings.postgres_dsn.rsplit("/", 1)[0] + f"/{self.db}"
        )

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = await self.connect()
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    async def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every seeded table's rows, references shown by the referenced email."""
        return {
            "users": await self.query("SELECT email, name, bio, active FROM users ORDER BY email"),
            "assets": await self.query(
                "SELECT u.email, a.title, a.size, a.meta FROM assets a "
                "JOIN users u ON u.id = a.owner_id ORDER BY u.email, a.title"
            ),
            "tags": await self.query("SELECT label, note FROM tags ORDER BY label"),
        }

    async def versions(self) -> list[tuple[Any, ...]]:
        """Each row's xmin: a row written again gets a new one."""
        return await self.query(
            "SELECT 'u', id::bigint, xmin::text FROM users UNION ALL "
            "SELECT 'a', id, xmin::text FROM assets UNION ALL "
            "SELECT 't', id::bigint, xmin::text FROM tags ORDER BY 1, 2"
        )

    async def provision(
        self, client: Client, expected: dict[str, PlanDigests] | None = None
    ) -> ProvisionResult:
        return await provision_steps(client, self.env, self.steps, expected)


async def provision_steps(
    client: Client,
    env: ProvisionEnv,
    steps: list[str],
    expected: dict[str, PlanDigests] | None = None,
) -> ProvisionResult:
    """A ProvisionWorkflow of `steps` on the environment's queue (a saved plan's digests when
    `expected` is given), to its result."""
    handle = await start_provision(
        client,
        steps=steps,
        expected=expected,
        workflow_id=f"provision-{uuid.uuid4()}",
        task_queue=env.queue,
    )
    result: ProvisionResult = await handle.result()
    return result


def _yaml(rows: list[dict[str, Any]]) -> str:
    return "".join("- " + json.dumps(r) + "\n" for r in rows)  # JSON is YAML


@pytest.fixture
async def stack(
    env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    made = Stack(env, tmp_path / "stack")
    monkeypatch.setenv(FILE_VARIABLE, str(made.file))
    try:
        yield made
    finally:
        await drop_databases(env, [made.db], [])


FIRST_ROWS = {
    "users": [
        ("bo@example.com", "Bo Ström", None, False),
        ("zoe@example.com", 'Zoë, the "first"', "line one\nline two — ok", True),
    ],
    "assets": [
        ("bo@example.com", "logo", 50, None),
        ("zoe@example.com", "banner", 900, None),
        ("zoe@example.com", "logo", 120, '{"w": 64}'),
    ],
    "tags": [("blue", None), ("red", "from the file")],
}


async def test_seed_creates_then_leaves_unchanged_then_reconciles_by_mode(
    env: ProvisionEnv, stack: Stack
) -> None:
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        # A plan before the database exists: every row would be created, nothing written.
        plan = await make_plan(
            client, steps=stack.steps, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}"
        )
        seeded = [(r.kind, r.name, r.action) for r in plan.changes if r.step == stack.step]
        assert seeded == [
            ("row", "users(zoe@example.com)", "create"),
            ("row", "users(bo@example.com)", "create"),
            ("row", "assets(zoe@example.com, logo)", "create"),
            ("row", "assets(zoe@example.com, banner)", "create"),
            ("row", "assets(bo@example.com, logo)", "create"),
            ("seed-row", "tags(red)", "create"),
            ("seed-row", "tags(blue)", "create"),
        ]

        # Applied as that saved plan: the migrations run first, and the seed step finds the
        # files as the plan saw them.
        steps, expected = apply_selection(plan)
        assert sorted(steps) == sorted(stack.steps)
        first = (await stack.provision(client, expected)).steps[stack.step]
        assert first.outcome == "created"
        assert first.counts == {"created": 7, "updated": 0, "deleted": 0, "unchanged": 0}
        assert first.detail == (
            "users: 2 created, 0 updated, 0 deleted, 0 unchanged; "
            "assets: 3 created, 0 updated, 0 deleted, 0 unchanged; "
            "tags: 2 created, 0 updated, 0 deleted, 0 unchanged"
        )
        assert await stack.rows() == FIRST_ROWS
        assert len(await stack.query("SELECT tbl, key FROM conceptor_seed_rows")) == 7

        # Re-run: nothing written, every row unchanged.
        versions = await stack.versions()
        again = (await stack.provision(client)).steps[stack.step]
        assert again.outcome == "unchanged"
        assert again.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 7}
        assert await stack.versions() == versions

        # Hand edits: an enforce row (repaired), an insert-missing row (left alone), a
        # managed row dropped from the file (deleted), a hand-inserted asset (kept).
        await stack.query("UPDATE users SET name = 'hacked' WHERE email = 'bo@example.com'")
        await stack.query("UPDATE tags SET note = 'mine' WHERE label = 'red'")
        await stack.query(
            "INSERT INTO assets (owner_id, title) "
            "SELECT id, 'by hand' FROM users WHERE email = 'bo@example.com'"
        )
        stack.write("assets.yaml", ASSETS[:2])
        plan = await make_plan(
            client, steps=stack.steps, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}"
        )
        assert [
            (r.kind, r.name, r.action, r.fields) for r in plan.changes if r.step == stack.step
        ] == [
            ("row", "users(bo@example.com)", "update", ["name"]),
            ("row", "assets(bo@example.com, logo)", "delete", []),
        ]
        # The record of seeded rows is provisioning's own table: never migrations' drift.
        assert [r for r in plan.changes if r.step != stack.step] == []
        third = (await stack.provision(client)).steps[stack.step]
        assert third.outcome == "updated"
        assert third.counts == {"created": 0, "updated": 1, "deleted": 1, "unchanged": 5}
        assert sorted(third.changed) == [
            "-row:assets(bo@example.com, logo)",
            "~row:users(bo@example.com)",
        ]
        rows = await stack.rows()
        assert rows["users"] == FIRST_ROWS["users"]
        assert rows["tags"] == [("blue", None), ("red", "mine")]
        assert rows["assets"] == [
            ("bo@example.com", "by hand", None, None),
            ("zoe@example.com", "banner", 900, None),
            ("zoe@example.com", "logo", 120, '{"w": 64}'),
        ]
        # The hand-inserted asset is not seeding's: a managed file never deletes it.
        stack.write("assets.yaml", ASSETS[:1])
        fourth = (await stack.provision(client)).steps[stack.step]
        assert fourth.changed == ["-row:assets(zoe@example.com, banner)"]
        assert [r[:2] for r in (await stack.rows())["assets"]] == [
            ("bo@example.com", "by hand"),
            ("zoe@example.com", "logo"),
        ]


async def test_reset_postgres_loads_the_seed_data_again(env: ProvisionEnv, stack: Stack) -> None:
    """Reset drops the tables (and the record of seeded rows), re-migrates and re-seeds: the
    file's rows are back, a hand-inserted one is gone with its table."""
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        await stack.provision(client)
        await stack.query("INSERT INTO tags (label) VALUES ('by hand')")
        handle = await start_reset_postgres(
            client,
            database=stack.db,
            workflow_id=f"reset-{uuid.uuid4()}",
            task_queue=env.queue,
        )
        result = await handle.result()
    assert result.dropped_tables == 5  # 3 seeded, the migrations' and the seed record
    assert result.migrations.counts["created"] == 1
    assert result.seed is not None
    assert result.seed.counts == {"created": 7, "updated": 0, "deleted": 0, "unchanged": 0}
    assert await stack.rows() == FIRST_ROWS


async def failing_run(
    client: Client, env: ProvisionEnv, stack: Stack
) -> dict[str, tuple[str, str | None]]:
    """A provisioning run of the stack's steps that must fail: each step's state and error."""
    workflow_id = f"provision-{uuid.uuid4()}"
    handle = await start_provision(
        client, steps=stack.steps, workflow_id=workflow_id, task_queue=env.queue
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await provision_status(client, workflow_id=workflow_id)
    return {s.step: (s.state, s.error) for s in status.steps}


async def test_a_renamed_column_is_refused_before_any_write(
    env: ProvisionEnv, stack: Stack
) -> None:
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        await stack.provision(client)
        (stack.folder / "migrations" / "0002_rename.sql").write_text(
            "ALTER TABLE users RENAME COLUMN name TO full_name;"
        )
        stack.write("tags.json", [*TAGS, {"label": "green"}])
        states = await failing_run(client, env, stack)
        assert states[f"migrate_postgres:{stack.db}"] == ("completed", None)
        assert states[stack.step] == (
            "failed",
            "users.csv: row 1: column 'name' does not exist in table users "
            "(it has id, email, full_name, bio, active)",
        )
        # Refused before any write: the tag the file added is not there.
        assert await stack.query("SELECT label FROM tags ORDER BY label") == [
            ("blue",),
            ("red",),
        ]

        # The file follows the schema of a migration not applied yet: a plan cannot check it
        # against the live schema, says so and does not fail; provisioning migrates, then seeds.
        (stack.folder / "migrations" / "0003_nickname.sql").write_text(
            "ALTER TABLE users ADD COLUMN nickname text;"
        )
        (stack.folder / "users.csv").write_text(
            USERS_CSV.replace("email,name,bio,active", "email,full_name,bio,active,nickname")
            .replace(",true\r\n", ",true,Z\r\n")
            .replace(",false\r\n", ",false,B\r\n"),
            encoding="utf-8",
        )
        handle = await start_provision(
            client,
            steps=stack.steps,
            plan=True,
            workflow_id=f"plan-{uuid.uuid4()}",
            task_queue=env.queue,
        )
        planned = (await handle.result()).steps[stack.step]
        assert planned.planned
        assert planned.detail == (
            "1 migration(s) pending (0003_nickname.sql): checked against the schema once they "
            "are applied; as it is now: users.csv: row 1: column 'nickname' does not exist in "
            "table users (it has id, email, full_name, bio, active)"
        )
        applied = (await stack.provision(client)).steps[stack.step]
        assert applied.counts == {"created": 1, "updated": 2, "deleted": 0, "unchanged": 5}
        assert await stack.query("SELECT email, nickname FROM users ORDER BY email") == [
            ("bo@example.com", "B"),
            ("zoe@example.com", "Z"),
        ]


async def test_a_reference_resolves_to_a_live_row_and_to_no_row_is_refused(
    env: ProvisionEnv, stack: Stack
) -> None:
    """A reference to a row the referenced file lacks but the table has (made by hand) is
    resolved to that row's id; to no row at all, refused before any write, naming file, row
    and column."""
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        await stack.provision(client)
        await stack.query("INSERT INTO users (email, name) VALUES ('hand@example.com', 'H')")
        stack.write("assets.yaml", [*ASSETS, {"owner_id": "hand@example.com", "title": "x"}])
        result = (await stack.provision(client)).steps[stack.step]
        assert result.changed == ["+row:assets(hand@example.com, x)"]
        assert await stack.query(
            "SELECT u.email FROM assets a JOIN users u ON u.id = a.owner_id WHERE a.title = 'x'"
        ) == [("hand@example.com",)]

        stack.write("tags.json", [*TAGS, {"label": "green"}])
        stack.write("assets.yaml", [*ASSETS, {"owner_id": "nobody@example.com", "title": "y"}])
        states = await failing_run(client, env, stack)
        assert states[stack.step] == (
            "failed",
            "assets.yaml: row 4: column 'owner_id': no row of users has email = nobody@example.com",
        )
        assert await stack.query("SELECT label FROM tags ORDER BY label") == [
            ("blue",),
            ("red",),
        ]


async def test_the_first_database_seeds_under_the_plain_step_name(
    env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database settings name keeps `seed_postgres`; UUID and timestamptz values parse."""
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "accounts.yaml").write_text(
        "- {id: 6f1c0a52-3c1e-4b8e-9a59-0d6f5b1e2a10, subject: s-1, username: ada,\n"
        "   last_seen_at: '2026-01-02T03:04:05+01:00'}\n"
        "- {id: 0b7e5a44-8f5d-4c1a-b1f2-3a4d5e6f7a8b, subject: s-2, username: grace}\n"
    )
    file = folder / "environment.yaml"
    file.write_text(
        f"""apiVersion: conceptor/v1
services: {{keycloak: false, minio: false, redis: false}}
databases:
  - name: {env.database}
    migrations: {MIGRATIONS}
    seed:
      - {{table: accounts, file: accounts.yaml, key: [subject], mode: enforce}}
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
"""
    )
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    client = await connect(env.settings)
    steps = ["wait_for_postgres", "migrate_postgres", "seed_postgres"]
    async with in_process_worker(client, env):
        handle = await start_provision(
            client, steps=steps, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
        )
        first = (await handle.result()).steps["seed_postgres"]
        assert first.changed == ["+row:accounts(s-1)", "+row:accounts(s-2)"]
        handle = await start_provision(
            client, steps=steps, workflow_id=f"provision-{uuid.uuid4()}", task_queue=env.queue
        )
        again = (await handle.result()).steps["seed_postgres"]
        assert again.counts == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 2}
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT id::text, subject, username, last_seen_at FROM accounts ORDER BY subject"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        (
            "6f1c0a52-3c1e-4b8e-9a59-0d6f5b1e2a10",
            "s-1",
            "ada",
            datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC),
        ),
        ("0b7e5a44-8f5d-4c1a-b1f2-3a4d5e6f7a8b", "s-2", "grace", None),
    ]
