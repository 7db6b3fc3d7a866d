"""Queue declarations: what each queue hosts and how its pool is sized from settings."""

from __future__ import annotations

import pytest

from conceptor.platform.settings import Settings
from conceptor.workers.declarations import QUEUES, get_queue
from conceptor.workers.executors import BlockingPool
from conceptor.workers.registry import resolve_queue
from conceptor.workers.runtime import worker_identity


def test_queues_declare_core_and_media() -> None:
    """core hosts provisioning + notifications; media hosts ingestion, blocking in a pool."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    # media: the shipped file's entry with the example service's code (services/central).
    core, media = QUEUES["core"], resolve_queue("media")
    assert [w.__name__ for w in core.workflows()] == [
        "ProvisionWorkflow",
        "ProvisionPlanWorkflow",
        "ResetPostgresWorkflow",
        "DriftWatchWorkflow",
        "SnapshotSaveWorkflow",
        "SnapshotRestoreWorkflow",
        "SnapshotListWorkflow",
        "SnapshotDeleteWorkflow",
        "SnapshotExportWorkflow",
        "SnapshotImportWorkflow",
        "SnapshotSpareWorkflow",
    ]
    core_names = {
        getattr(a, "__temporal_activity_definition").name for a in core.activities(settings)
    }
    assert {
        "send_notification",
        "migrate_postgres",
        "ensure_buckets",
        "import_realm",
        "register_drift_watch",
    } <= core_names
    assert core.blocking(settings) is None
    assert [w.__name__ for w in media.workflows()] == ["MediaIngestWorkflow"]
    media_names = [
        getattr(a, "__temporal_activity_definition").name for a in media.activities(settings)
    ]
    assert media_names == [
        "create_thumbnails",
        "mark_asset_processing",
        "complete_asset",
        "fail_asset",
    ]
    assert (media.blocking(settings), media.pool_size(settings)) == ("thread", 4)


def test_media_pool_follows_settings() -> None:
    """Pool kind and size come from the file, a setting given for one run wins; not code."""
    settings = Settings(_env_file=None, worker_pool_size={"media": 3})  # type: ignore[call-arg]
    with BlockingPool(resolve_queue("media"), settings) as pool:
        assert (pool.kind, pool.size, pool.executor._max_workers) == ("thread", 3, 3)
    with BlockingPool(QUEUES["core"], settings) as pool:
        assert (pool.kind, pool.executor) == (None, None)


def test_get_queue_unknown_lists_known() -> None:
    with pytest.raises(KeyError) as refused:
        get_queue("video")
    assert refused.value.args == ("unknown queue 'video'; known: core",)


def test_worker_identity_names_queue_index_host() -> None:
    import socket

    assert worker_identity("media", 3) == f"worker-media-3@{socket.gethostname()}"


def test_the_platform_names_its_own_queue_only() -> None:
    """The platform declares `core` alone; the shipped file adds the example service's."""
    from conceptor import contracts

    assert list(QUEUES) == [contracts.CORE_QUEUE]
    assert not hasattr(contracts, "MEDIA_QUEUE")
    assert resolve_queue("media").name == "media"
