"""Bucket seed data as a reconciled step, on the real servers: a folder's files uploaded after
the buckets are ensured, unchanged on a re-run (no object written), a hand edit left alone
under insert-missing and reported (plan, drift watch) and repaired under enforce, an object
the folder dropped deleted under managed while a hand upload stays, a folder that cannot be
seeded refused before any write; and the example application's seed data loaded whole."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from conceptor.activities.seed.objects import SEED_METADATA
from conceptor.client.plan import apply_selection, make_plan
from conceptor.client.provisioning import provision_status, start_provision
from conceptor.contracts import DRIFT_WATCH_WORKFLOW, DriftReport, PlanDigests, ProvisionResult
from conceptor.platform import environment
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.s3 import s3_client
from conceptor.platform.settings import REPO_ROOT
from conceptor.platform.temporal import connect
from tests.integration.provision_support import ProvisionEnv, in_process_worker
from tests.integration.test_provision_seed import env, provision_steps

__all__ = ["env"]  # the isolated environment fixture, shared with the table seed's tests

pytestmark = pytest.mark.integration

FILES = {
    "logo.png": b"\x89PNG\r\n\x1a\nfake logo",
    "docs/readme.txt": "héllo, wörld\n".encode(),
    "docs/deep/data.json": b'{"answer": 42}',
}
TAG = {"TagSet": [{"Key": "probe", "Value": "untouched"}]}


class Stack:
    """The isolated environment's private bucket, declared with a seed folder of files."""

    def __init__(self, env: ProvisionEnv, folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.bucket = env.private_bucket
        self.step = f"seed_bucket:{self.bucket}"
        self.steps = ["wait_for_minio", "ensure_buckets", self.step]
        self.file = folder / "environment.yaml"
        for key, body in FILES.items():
            self.put_file(key, body)

    def put_file(self, key: str, body: bytes) -> None:
        path = self.folder / "objects" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def declare(self, mode: str, folder: str = "objects") -> None:
        self.file.write_text(
            f"""apiVersion: conceptor/v1
services: {{keycloak: false, postgres: false, redis: false, db-tools: false}}
buckets:
  - name: {self.bucket}
    seed: {{folder: {folder}, mode: {mode}}}
  - name: {self.env.public_bucket}
    policy: public-read
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
"""
        )

    async def provision(
        self, client: Client, expected: dict[str, PlanDigests] | None = None
    ) -> ProvisionResult:
        return await provision_steps(client, self.env, self.steps, expected)

    async def drift(self, client: Client) -> DriftReport:
        """One run of the drift watch on this environment's queue (repair is off)."""
        report: DriftReport = await client.execute_workflow(
            DRIFT_WATCH_WORKFLOW,
            id=f"drift-{uuid.uuid4()}",
            task_queue=self.env.queue,
            result_type=DriftReport,
        )
        return report

    async def plan(self, client: Client) -> list[tuple[str, ...]]:
        plan = await make_plan(
            client, steps=self.steps, task_queue=self.env.queue, workflow_id=f"plan-{uuid.uuid4()}"
        )
        return [(r.kind, r.name, r.action, *r.fields) for r in plan.changes if r.step == self.step]

    async def objects(self) -> dict[str, bytes]:
        """Every object's bytes, by key."""
        async with s3_client(self.env.settings) as s3:
            listed = await s3.list_objects_v2(Bucket=self.bucket)
            out = {}
            for obj in listed.get("Contents", []):
                got = await s3.get_object(Bucket=self.bucket, Key=obj["Key"])
                out[obj["Key"]] = await got["Body"].read()
            return out

    async def s3_call(self, method: str, **kwargs: Any) -> Any:
        async with s3_client(self.env.settings) as s3:
            return await getattr(s3, method)(Bucket=self.bucket, **kwargs)

    async def tag_all(self) -> None:
        """A tag on every object: a PUT replaces the object and drops its tags, so a tag
        still there afterwards proves the object was not written again."""
        for key in await self.objects():
            await self.s3_call("put_object_tagging", Key=key, Tagging=TAG)

    async def tagged(self) -> list[str]:
        keys = []
        for key in await self.objects():
            got = await self.s3_call("get_object_tagging", Key=key)
            if got["TagSet"] == TAG["TagSet"]:
                keys.append(key)
        return sorted(keys)


@pytest.fixture
def stack(env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    made = Stack(env, tmp_path / "stack")
    made.declare("enforce")
    monkeypatch.setenv(FILE_VARIABLE, str(made.file))
    return made


def _counts(created: int = 0, updated: int = 0, deleted: int = 0, unchanged: int = 0) -> Any:
    return {"created": created, "updated": updated, "deleted": deleted, "unchanged": unchanged}


async def test_seed_creates_then_leaves_unchanged_then_reconciles_by_mode(
    env: ProvisionEnv, stack: Stack
) -> None:
    client = await connect(env.settings)
    b = stack.bucket
    async with in_process_worker(client, env):
        # Planned before anything is written: every object would be created.
        plan = await make_plan(
            client, steps=stack.steps, task_queue=env.queue, workflow_id=f"plan-{uuid.uuid4()}"
        )
        assert [(r.kind, r.name, r.action) for r in plan.changes if r.step == stack.step] == [
            ("object", f"{b}/docs/deep/data.json", "create"),
            ("object", f"{b}/docs/readme.txt", "create"),
            ("object", f"{b}/logo.png", "create"),
        ]
        steps, expected = apply_selection(plan)
        assert sorted(steps) == sorted(stack.steps)
        first = (await stack.provision(client, expected)).steps[stack.step]
        assert first.outcome == "created"
        assert first.counts == _counts(created=3)
        assert first.detail == f"{b}: 3 created, 0 updated, 0 deleted, 0 unchanged"
        assert await stack.objects() == FILES
        head = await stack.s3_call("head_object", Key="docs/readme.txt")
        assert head["ContentType"] == "text/plain"
        assert head["Metadata"] == {
            SEED_METADATA: hashlib.sha256(FILES["docs/readme.txt"]).hexdigest()
        }

        # Re-run: nothing written (every object keeps its tag), every object unchanged.
        await stack.tag_all()
        again = (await stack.provision(client)).steps[stack.step]
        assert (again.outcome, again.counts) == ("unchanged", _counts(unchanged=3))
        assert await stack.tagged() == sorted(FILES)

        # A hand edit under enforce: planned, seen by the drift watch, repaired.
        await stack.s3_call("put_object", Key="logo.png", Body=b"edited by hand")
        assert await stack.plan(client) == [("object", f"{b}/logo.png", "update", "content")]
        report = await stack.drift(client)
        assert [(i.step, i.kind, i.name, i.action, i.fields) for i in report.items] == [
            (stack.step, "object", f"{b}/logo.png", "update", ["content"])
        ]
        assert report.repair_workflow_id is None  # repair is off: reported only
        repaired = (await stack.provision(client)).steps[stack.step]
        assert (repaired.outcome, repaired.changed) == ("updated", [f"~object:{b}/logo.png"])
        assert repaired.counts == _counts(updated=1, unchanged=2)
        assert (await stack.objects())["logo.png"] == FILES["logo.png"]
        assert await stack.tagged() == ["docs/deep/data.json", "docs/readme.txt"]

        # insert-missing: a hand edit is the developer's (not planned, not drift), a deleted
        # object comes back.
        stack.declare("insert-missing")
        await stack.s3_call("put_object", Key="logo.png", Body=b"mine now")
        await stack.s3_call("delete_object", Key="docs/readme.txt")
        assert await stack.plan(client) == [("seed-object", f"{b}/docs/readme.txt", "create")]
        report = await stack.drift(client)
        assert report.items == []
        loose = (await stack.provision(client)).steps[stack.step]
        assert loose.changed == [f"+seed-object:{b}/docs/readme.txt"]
        assert loose.counts == _counts(created=1, unchanged=2)
        assert await stack.objects() == {**FILES, "logo.png": b"mine now"}


async def test_managed_deletes_only_what_seeding_put_there(env: ProvisionEnv, stack: Stack) -> None:
    client = await connect(env.settings)
    b = stack.bucket
    stack.declare("managed")
    async with in_process_worker(client, env):
        await stack.provision(client)
        await stack.s3_call("put_object", Key="by-hand.txt", Body=b"uploaded by hand")
        (stack.folder / "objects" / "docs" / "readme.txt").unlink()
        assert await stack.plan(client) == [("object", f"{b}/docs/readme.txt", "delete")]
        result = (await stack.provision(client)).steps[stack.step]
        assert (result.outcome, result.changed) == ("updated", [f"-object:{b}/docs/readme.txt"])
        assert result.counts == _counts(deleted=1, unchanged=2)
        assert await stack.objects() == {
            "by-hand.txt": b"uploaded by hand",
            "docs/deep/data.json": FILES["docs/deep/data.json"],
            "logo.png": FILES["logo.png"],
        }
        # An object seeding put there and a person replaced is theirs: the folder dropping
        # it deletes nothing.
        await stack.s3_call("put_object", Key="logo.png", Body=b"replaced by hand")
        (stack.folder / "objects" / "logo.png").unlink()
        again = (await stack.provision(client)).steps[stack.step]
        assert (again.outcome, again.counts) == ("unchanged", _counts(unchanged=1))
        assert sorted(await stack.objects()) == ["by-hand.txt", "docs/deep/data.json", "logo.png"]


async def _failure(client: Client, stack: Stack) -> tuple[str, str | None]:
    workflow_id = f"provision-{uuid.uuid4()}"
    handle = await start_provision(
        client, steps=stack.steps, workflow_id=workflow_id, task_queue=stack.env.queue
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await provision_status(client, workflow_id=workflow_id)
    return next((s.state, s.error) for s in status.steps if s.step == stack.step)


async def test_a_folder_that_cannot_be_seeded_is_refused_before_any_write(
    env: ProvisionEnv, stack: Stack
) -> None:
    client = await connect(env.settings)
    where = f"{stack.file}: buckets[0].seed.folder"
    async with in_process_worker(client, env):
        stack.put_file("docs/tab\there.txt", b"x")
        assert await _failure(client, stack) == (
            "failed",
            f"{where}: objects/docs/tab\there.txt: its name holds control character(s) "
            "'\\t'; rename the file",
        )
        assert await stack.objects() == {}  # the good files were not uploaded either

        # A missing folder: the file itself is refused, before any step runs.
        stack.declare("enforce", folder="no-such-folder")
        with pytest.raises(WorkflowFailureError) as info:
            await stack.provision(client)
        assert (
            "buckets[0].seed.folder: seed folder 'no-such-folder' does not exist "
            f"({stack.folder / 'no-such-folder'}); create it or correct the path"
        ) in str(info.value.cause)
        assert await stack.objects() == {}


async def test_the_example_applications_seed_data_loads_whole(
    env: ProvisionEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped seed (services/central/seed) on this environment's database and buckets:
    the media library's rows, their originals and thumbnails; the thumbnails are served to a
    browser from the public bucket; a re-run changes nothing."""
    seed = REPO_ROOT / "services" / "central" / "seed"
    # The shipped file's migrations: the schema the seed rows are for.
    [db] = environment.load(environment.DEFAULT_FILE).databases
    migrations = [str(environment.DEFAULT_FILE.parent / m) for m in db.migration_folders]
    file = tmp_path / "environment.yaml"
    file.write_text(
        f"""apiVersion: conceptor/v1
services: {{keycloak: false, redis: false}}
databases:
  - name: {env.database}
    migrations: {json.dumps(migrations)}
    seed:
      - {{table: media_assets, file: {seed / "media_assets.yaml"}, key: [original_key]}}
buckets:
  - name: {env.private_bucket}
    seed: {{folder: {seed / "media"}}}
  - name: {env.public_bucket}
    policy: public-read
    seed: {{folder: {seed / "thumbnails"}}}
queues:
  - name: core
    declaration: conceptor.workers.declarations:CORE
"""
    )
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    seeds = [
        "seed_postgres",
        f"seed_bucket:{env.private_bucket}",
        f"seed_bucket:{env.public_bucket}",
    ]
    steps = ["wait_for_postgres", "migrate_postgres", "wait_for_minio", "ensure_buckets", *seeds]
    client = await connect(env.settings)
    async with in_process_worker(client, env):
        first = (await provision_steps(client, env, steps)).steps
        again = (await provision_steps(client, env, steps)).steps
    assert [first[s].counts["created"] for s in seeds] == [3, 3, 6]
    assert [again[s].counts for s in seeds] == [
        _counts(unchanged=3),
        _counts(unchanged=3),
        _counts(unchanged=6),
    ]
    conn = await asyncpg.connect(env.settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT original_key, status, size_bytes, thumbnails FROM media_assets ORDER BY 1"
        )
    finally:
        await conn.close()
    assert [(r["status"], r["original_key"].split("/")[1]) for r in rows] == [
        ("ready", "mountains.jpg"),
        ("ready", "harbour.jpg"),
        ("ready", "sketch.png"),
    ]
    async with s3_client(env.settings) as s3:
        for row in rows:
            got = await s3.get_object(Bucket=env.private_bucket, Key=row["original_key"])
            assert len(await got["Body"].read()) == row["size_bytes"]
    thumbnail = (
        seed / "thumbnails" / rows[0]["original_key"].split("/")[0] / "128.jpg"
    ).read_bytes()
    async with httpx.AsyncClient(timeout=10) as http:
        public = await http.get(
            f"{env.settings.s3_endpoint}/{env.public_bucket}/"
            + rows[0]["original_key"].split("/")[0]
            + "/128.jpg"
        )
    assert (public.status_code, public.headers["content-type"], public.content) == (
        200,
        "image/jpeg",
        thumbnail,
    )
