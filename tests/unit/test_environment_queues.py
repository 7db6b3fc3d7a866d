"""Queues from the environment file: port layout, the refusal of an undeclared queue, the code."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conceptor.cli import app
from conceptor.platform.queues import (
    FIRST_BLOCK_OFFSET,
    UnknownQueueError,
    declared_queues,
    queue_worker_port,
    slot_port,
    team_code,
)
from conceptor.platform.settings import (
    MAX_WORKERS_PER_QUEUE,
    PORT_OFFSETS,
    REPO_ROOT,
    Settings,
    get_settings,
)
from conceptor.workers.registry import DeclarationError, resolve_queue

TEAM_MODULE = '''\
"""A team's queue, outside the conceptor package."""
from temporalio import activity, workflow


@activity.defn
async def charge(amount: int) -> int:
    return amount


@workflow.defn
class ChargeWorkflow:
    @workflow.run
    async def run(self, amount: int) -> int:
        return amount


class Billing:
    def workflows(self):
        return [ChargeWorkflow]

    def activities(self, settings):
        return [charge]


BILLING = Billing()
'''


def _queues_file(tmp_path: Path, names: list[str]) -> Path:
    lines = ["apiVersion: conceptor/v1", "queues:"]
    lines += [f"  - {{name: {n}, declaration: team_{n}:QUEUE}}" for n in names]
    file = tmp_path / "environment.yaml"
    file.write_text("\n".join(lines) + "\n")
    return file


def _settings(prefix: str, worker_prefix: str | None = None) -> Settings:
    return Settings(_env_file=None, port_prefix=prefix, worker_port_prefix=worker_prefix)


@pytest.mark.parametrize("prefix", ["100", "440", "600"])
def test_many_queues_of_twenty_workers_never_collide(tmp_path: Path, prefix: str) -> None:
    """30 queues x 20 workers: 600 distinct ports, none a service's, core and media as before."""
    names = ["core", "media", *(f"q{i:02d}" for i in range(28))]
    file = _queues_file(tmp_path, names)
    services = set(_settings(prefix).all_ports().values())
    workers = {
        (q, i): queue_worker_port(prefix, None, q, i, file)
        for q in names
        for i in range(MAX_WORKERS_PER_QUEUE)
    }
    assert len(set(workers.values())) == 30 * MAX_WORKERS_PER_QUEUE
    assert not services & set(workers.values())
    base = int(prefix) * 100
    # The first two queues keep the prefix's own block: core 30-49, media 50-69.
    assert workers[("core", 0)] == base + 30
    assert workers[("core", 19)] == base + 49
    assert workers[("media", 0)] == base + 50
    assert workers[("media", 19)] == base + 69
    # The third queue opens the second block at the next prefix, five queues per hundred.
    assert workers[("q00", 0)] == base + 100
    assert workers[("q04", 19)] == base + 199
    assert workers[("q05", 0)] == base + 200
    assert workers[("q27", 19)] == base + 100 + 28 * 20 - 1
    # Nothing of the second block is in the prefix's own hundred.
    assert all(p >= base + 100 for (q, _), p in workers.items() if q not in ("core", "media"))


def test_first_block_holds_no_service_port() -> None:
    """Offsets 30-69 are free of every named slot (services, launchers)."""
    first = range(FIRST_BLOCK_OFFSET, FIRST_BLOCK_OFFSET + 2 * MAX_WORKERS_PER_QUEUE)
    assert sorted(o for o in PORT_OFFSETS.values() if o in first) == []


def test_the_platform_queue_comes_first_wherever_the_file_lists_it(tmp_path: Path) -> None:
    file = _queues_file(tmp_path, ["billing", "media", "core"])
    assert [q.name for q in declared_queues(file)] == ["core", "billing", "media"]
    assert queue_worker_port("440", None, "core", 0, file) == 44030
    assert queue_worker_port("440", None, "billing", 3, file) == 44053
    assert queue_worker_port("440", None, "media", 3, file) == 44103


def test_the_second_block_follows_tilt_worker_port_prefix(tmp_path: Path) -> None:
    assert slot_port("440", "500", 2, 0) == 50000
    assert slot_port("440", "500", 7, 19) == 50119
    assert slot_port("440", None, 2, 0) == 44100
    with pytest.raises(ValueError) as past:
        slot_port("654", None, 3, 19)
    assert str(past.value) == (
        "worker 19 of queue number 4 would use port 65539, which is past 65535: set "
        "TILT_WORKER_PORT_PREFIX to a prefix whose block (and the ones after it, five queues "
        "per block) nothing else uses"
    )
    with pytest.raises(ValueError, match=r"port 44000, which falls in the block of 440:"):
        slot_port("440", "440", 2, 0)
    with pytest.raises(ValueError, match=r"^worker index 20 is outside 0\.\.19$"):
        slot_port("440", None, 0, 20)


def test_a_bad_worker_port_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="TILT_WORKER_PORT_PREFIX='99' is not a valid prefix"):
        _settings("440", "99")


def test_an_undeclared_queue_is_refused_naming_the_file(tmp_path: Path) -> None:
    file = _queues_file(tmp_path, ["core", "billing"])
    with pytest.raises(UnknownQueueError) as err:
        queue_worker_port("440", None, "video", 0, file)
    assert str(err.value) == (
        f"queue 'video' is not declared in {file}; it declares: core, billing "
        "(add it under `queues:` to run it)"
    )


def test_conceptor_worker_refuses_an_undeclared_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`conceptor worker video` exits 2 before any port opens, naming the file and its queues."""
    file = _queues_file(tmp_path, ["core", "billing"])
    monkeypatch.setenv("CONCEPTOR_ENVIRONMENT_FILE", str(file))
    # Wide enough that the error box does not wrap the file's path.
    result = CliRunner().invoke(app, ["worker", "video", "--index", "0"], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.replace("│", " ").split())
    assert f"queue 'video' is not declared in {file}; it declares: core, billing" in flat


def test_a_declaration_outside_the_package_resolves_with_the_files_settings(
    tmp_path: Path,
) -> None:
    """module:attribute found next to the file; concurrency and pool from the file."""
    (tmp_path / "team_billing_unit.py").write_text(TEAM_MODULE)
    file = tmp_path / "environment.yaml"
    file.write_text(
        "apiVersion: conceptor/v1\n"
        "queues:\n"
        "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
        "  - name: billing\n"
        "    declaration: team_billing_unit:BILLING\n"
        "    concurrency: {activities: 7, workflow_tasks: 3}\n"
        "    blocking: {kind: process, pool_size: 2}\n"
        "  - {name: ghost, declaration: team_ghost_nowhere:QUEUE}\n"
    )
    settings = Settings(_env_file=None)
    billing = resolve_queue("billing", file)
    assert [w.__name__ for w in billing.workflows()] == ["ChargeWorkflow"]
    assert [a.__name__ for a in billing.activities(settings)] == ["charge"]
    assert billing.max_concurrent_activities(settings) == 7
    assert billing.max_concurrent_workflow_tasks(settings) == 3
    assert (billing.blocking(settings), billing.pool_size(settings)) == ("process", 2)
    core = resolve_queue("core", file)
    assert core.blocking(settings) is None
    assert core.max_concurrent_activities(settings) == 50
    with pytest.raises(DeclarationError, match="queue 'ghost': importing team_ghost_nowhere"):
        resolve_queue("ghost", file)


def test_an_explicit_setting_still_wins_over_the_file() -> None:
    """CENTRAL_WORKER_POOL_KIND / _SIZE and the per-queue concurrency dicts, given, override
    the file for the queues they name."""
    given = Settings(
        _env_file=None,
        worker_pool_kind={"media": "process"},
        worker_pool_size={"media": 3},
        worker_max_concurrent_activities={"media": 9},
    )
    media = resolve_queue("media")
    assert (media.blocking(given), media.pool_size(given)) == ("process", 3)
    assert media.max_concurrent_activities(given) == 9
    assert media.max_concurrent_workflow_tasks(given) == 10  # from the file
    default = Settings(_env_file=None)
    assert (media.blocking(default), media.pool_size(default)) == ("thread", 4)
    assert media.max_concurrent_activities(default) == 4


def test_the_app_image_gets_the_team_code_the_file_names(tmp_path: Path) -> None:
    """Queue declarations' and steps' top-level packages/modules inside the repository, by
    their repository paths; `conceptor` and code outside the repository are left out."""
    inside = REPO_ROOT / "tests" / "artifacts" / f"team-code-{uuid.uuid4().hex[:8]}"
    (inside / "billing_pkg" / "queues").mkdir(parents=True)
    (inside / "billing_pkg" / "__init__.py").write_text("")
    (inside / "topics_step.py").write_text("def run(ctx):\n    return None\n")
    (tmp_path / "outside_mod.py").write_text("")
    body = (
        "apiVersion: conceptor/v1\n"
        "queues:\n"
        "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
        "  - {name: billing, declaration: billing_pkg.queues.main:QUEUE}\n"
        "  - {name: invoices, declaration: billing_pkg:OTHER}\n"
        "steps:\n"
        "  - {name: topics, run: topics_step:run}\n"
    )
    try:
        (inside / "environment.yaml").write_text(body)
        rel = inside.relative_to(REPO_ROOT).as_posix()
        assert team_code(inside / "environment.yaml") == [
            f"{rel}/billing_pkg",
            f"{rel}/topics_step.py",
        ]
        (tmp_path / "environment.yaml").write_text(
            body.replace("topics_step:run", "outside_mod:run")
        )
        assert team_code(tmp_path / "environment.yaml") == []  # no build context holds it
    finally:
        shutil.rmtree(inside)


def test_dev_ports_lists_every_declared_queues_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dev ports`: each queue's default workers after the services; --json every slot's port."""
    file = tmp_path / "environment.yaml"
    file.write_text(
        "apiVersion: conceptor/v1\n"
        "queues:\n"
        "  - {name: core, declaration: conceptor.workers.declarations:CORE}\n"
        "  - {name: media, declaration: services.central.queue:MEDIA, workers: 0}\n"
        "  - {name: billing, declaration: team_billing:QUEUE, workers: 2}\n"
    )
    monkeypatch.setenv("CONCEPTOR_ENVIRONMENT_FILE", str(file))
    monkeypatch.setenv("TILT_PORT_PREFIX", "468")
    get_settings.cache_clear()
    try:
        plain = CliRunner().invoke(app, ["dev", "ports"])
        assert plain.exit_code == 0, plain.output
        assert plain.stdout.splitlines()[len(PORT_OFFSETS) :] == [
            "worker-core-0=46830",
            "worker-billing-0=46900",
            "worker-billing-1=46901",
        ]
        more = CliRunner().invoke(app, ["dev", "ports", "--workers", "media=1", "--json"])
        out = json.loads(more.stdout)
        assert [
            (q["name"], q["workers"], q["ports"][0], q["ports"][-1]) for q in out["queues"]
        ] == [
            ("core", 1, 46830, 46849),
            ("media", 1, 46850, 46869),
            ("billing", 2, 46900, 46919),
        ]
        assert out["ports"]["worker-media-0"] == 46850
        bad = CliRunner().invoke(app, ["dev", "ports", "--workers", "video=1"])
        assert bad.exit_code == 2
        assert "no queue named video in the environment file (it has core, media, billing)" in (
            bad.stderr
        )
    finally:
        get_settings.cache_clear()
