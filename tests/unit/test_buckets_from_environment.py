"""The bucket step's desired set: the environment file's buckets, unless a run names its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from conceptor.activities.storage import StorageActivities
from conceptor.platform.environment import FILE_VARIABLE
from conceptor.platform.settings import Settings

FILE = """apiVersion: conceptor/v1
buckets:
  - name: invoices
    policy: private
    lifecycle:
      - {id: expire-drafts, prefix: drafts/, expire_days: 7, x-why: drafts are scratch}
  - {name: media, policy: private, versioning: false, lifecycle: []}
"""


def test_the_files_buckets_are_desired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "environment.yaml"
    file.write_text(FILE)
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    monkeypatch.delenv("CENTRAL_BUCKETS", raising=False)
    monkeypatch.delenv("CENTRAL_BUCKETS_FILE", raising=False)
    desired = StorageActivities(Settings()).desired()
    assert [(b.name, b.policy, b.versioning, b.source) for b in desired] == [
        ("invoices", "private", None, f"{file}: buckets.invoices"),
        ("media", "private", False, f"{file}: buckets.media"),
    ]
    rules = desired[0].lifecycle or []
    assert [(r.id, r.prefix, r.expire_days) for r in rules] == [("expire-drafts", "drafts/", 7)]


def test_a_run_that_names_its_buckets_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "environment.yaml"
    file.write_text(FILE)
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    empty = tmp_path / "buckets.json"
    empty.write_text('{"buckets": {}}')
    settings = Settings().model_copy(
        update={"buckets": {"own-bucket": "private"}, "buckets_file": empty}
    )
    assert [b.name for b in StorageActivities(settings).desired()] == ["own-bucket"]
