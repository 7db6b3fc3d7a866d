"""The drift watch and seed data: rows of enforce and managed tables that differ are drift
(reported, repaired when asked); rows an insert-missing table lacks are not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from conceptor.contracts import (
    PROVISION_DEFAULTS,
    SEED_STEP,
    Change,
    Diff,
    ProvisionDefaults,
    build_graph,
)
from tests.unit.test_drift_watch_workflow import check, env, fakes

__all__ = ["env"]  # the module's Temporal test server, shared

GRAPH = build_graph(databases=["conceptor"], realms=["technova"], seeded=["conceptor"])


def with_seed(
    diff: Diff, calls: list[str], *, repair: bool, wiped: Diff | None = None
) -> list[Callable[..., Any]]:
    """The default fakes, the graph's seed step planning `diff` (and migrate_postgres
    planning `wiped`, when given)."""
    acts = fakes({SEED_STEP: diff, **({"migrate_postgres": wiped} if wiped else {})}, calls)

    @activity.defn(name=PROVISION_DEFAULTS)
    async def defaults() -> ProvisionDefaults:
        return ProvisionDefaults(step_deadline_seconds=30, drift_repair=repair, graph=GRAPH)

    return [defaults, *acts[1:]]


async def test_enforced_rows_are_drift_and_repaired(env: WorkflowEnvironment) -> None:
    calls: list[str] = []
    diff = Diff(
        target="seed of database conceptor",
        changes=[
            Change(kind="row", name="users(a@x)", action="update", fields=["name"]),
            Change(kind="seed-row", name="tags(red)", action="create"),
        ],
    )
    report = await check(env, with_seed(diff, calls, repair=True))
    assert [(i.step, i.kind, i.name, i.action) for i in report.items] == [
        (SEED_STEP, "row", "users(a@x)", "update")
    ]
    assert report.data_loss == []
    # The repair runs the seed step and what it waits for: its database's migrations.
    assert [c for c in calls if c.endswith(":apply")] == [
        "migrate_postgres:apply",
        f"{SEED_STEP}:apply",
    ]


async def test_rows_missing_from_an_insert_missing_table_are_not_drift(
    env: WorkflowEnvironment,
) -> None:
    calls: list[str] = []
    diff = Diff(
        target="seed of database conceptor",
        changes=[Change(kind="seed-row", name="tags(red)", action="create")],
    )
    report = await check(env, with_seed(diff, calls, repair=True))
    assert report.items == [] and not report.has_drift
    assert calls.count(f"{SEED_STEP}:plan") == 1
    assert not [c for c in calls if c.endswith(":apply")]


async def test_a_database_healed_after_data_loss_is_seeded_again(
    env: WorkflowEnvironment,
) -> None:
    calls: list[str] = []
    seed = Diff(
        target="seed of database conceptor",
        changes=[Change(kind="seed-row", name="tags(red)", action="create")],
    )
    wiped = Diff(
        target="database conceptor",
        changes=[Change(kind="migration", name="0001_init.sql", action="create")],
    )
    report = await check(env, with_seed(seed, calls, repair=False, wiped=wiped))
    assert report.data_loss == ["postgres"]
    assert [(i.step, i.name, i.action) for i in report.items] == [
        ("migrate_postgres", "0001_init.sql", "create")
    ]
    assert [c for c in calls if c.endswith(":apply")] == [
        "migrate_postgres:apply",
        f"{SEED_STEP}:apply",
    ]


async def test_a_bucket_service_healed_after_data_loss_is_seeded_again(
    env: WorkflowEnvironment,
) -> None:
    """MinIO came back empty: ensure_buckets makes the buckets again, then each bucket's seed
    step uploads its files; insert-missing objects are not drift, enforce ones are."""
    calls: list[str] = []
    wiped = Diff(
        target="buckets",
        changes=[Change(kind="bucket", name=n, action="create") for n in ("media", "thumbnails")],
    )
    media = Diff(
        target="seed of bucket media",
        changes=[Change(kind="seed-object", name="media/a/x.jpg", action="create")],
    )
    thumbnails = Diff(
        target="seed of bucket thumbnails",
        changes=[Change(kind="object", name="thumbnails/a/128.jpg", action="create")],
    )
    diffs = {
        "ensure_buckets": wiped,
        "seed_bucket:media": media,
        "seed_bucket:thumbnails": thumbnails,
    }
    # The shipped graph: both buckets seeded after ensure_buckets.
    report = await check(env, fakes(diffs, calls))
    assert report.data_loss == ["minio"]
    assert [(i.step, i.kind, i.name) for i in report.items] == [
        ("ensure_buckets", "bucket", "media"),
        ("ensure_buckets", "bucket", "thumbnails"),
        ("seed_bucket:thumbnails", "object", "thumbnails/a/128.jpg"),
    ]
    assert sorted(c for c in calls if c.endswith(":apply")) == [
        "ensure_buckets:apply",
        "seed_bucket:media:apply",
        "seed_bucket:thumbnails:apply",
    ]
