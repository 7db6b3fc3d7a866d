"""PostgreSQL: one major in both infra modes, and a cluster of another major is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conceptor.platform.devservices.postgres import ClusterVersionError, prepare
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import postgres_major, versions

K8S_POSTGRES = REPO_ROOT / "_dev-env" / "k8s" / "postgres" / "deployment.yaml"


def _k8s_image() -> str:
    (deployment,) = [d for d in yaml.safe_load_all(K8S_POSTGRES.read_text()) if d]
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "postgres"
    ]
    return str(container["image"])


def _snapshot(root: Path) -> list[tuple[str, bytes | None]]:
    """Every path under root with a file's bytes (None for a directory)."""
    return sorted(
        (str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    )


def test_k8s_postgres_image_runs_the_pinned_major() -> None:
    """The cluster's postgres image and local mode's pinned server share one major version."""
    match = re.fullmatch(r"postgres:(\d+)\.\d+(-.*)?", _k8s_image())
    assert match, f"unexpected image {_k8s_image()!r}"
    assert int(match.group(1)) == postgres_major() == 16


def test_pinned_version_belongs_to_the_pinned_major() -> None:
    """POSTGRES_VERSION (the exact build dev-setup installs) is a release of POSTGRES_MAJOR."""
    assert versions()["POSTGRES_VERSION"].split(".")[0] == versions()["POSTGRES_MAJOR"]


def test_prepare_refuses_a_cluster_of_another_major(tmp_path: Path) -> None:
    """A data dir made by PostgreSQL 15 is refused with the way forward, and left untouched."""
    data_dir = tmp_path / "postgres"
    cluster = data_dir / "data"
    (cluster / "base").mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("15\n")
    (cluster / "base" / "1").write_bytes(b"\x00rows")
    before = _snapshot(tmp_path)
    assert len(before) == 5
    with pytest.raises(ClusterVersionError) as caught:
        prepare(Settings(environment="test", localdev_dir=tmp_path), data_dir)
    assert str(caught.value) == (
        f"{cluster} holds a PostgreSQL 15 cluster, and this stack runs PostgreSQL 16, which "
        "cannot open it; nothing was changed. To start with an empty database (the provision "
        "step re-applies the migrations): `conceptor dev reset postgres`, then start again. "
        "To keep the data, dump it with PostgreSQL 15 first, then reset and restore (README.md, "
        "Troubleshooting, 'A PostgreSQL 15 data directory')"
    )
    assert _snapshot(tmp_path) == before
