"""Every app pod reads the PostgreSQL superuser's password from the cluster's Secret: a
declared database's migrate step creates it when missing, and snapshots copy databases."""

from __future__ import annotations

from pathlib import Path

import yaml

from conceptor.commands.k8s_manifests import POSTGRES_SECRET, app_env
from conceptor.platform.settings import REPO_ROOT, Settings


def test_app_pods_get_the_superuser_password_from_the_postgres_secret() -> None:
    env = {v.name: v for v in app_env(Settings(environment="test"))}
    source = env["CENTRAL_POSTGRES_SUPERUSER_PASSWORD"].value_from
    assert source is not None
    ref = source.secret_key_ref
    assert ref is not None
    assert (ref.name, ref.key) == (POSTGRES_SECRET, "POSTGRES_PASSWORD")
    assert env["CENTRAL_POSTGRES_SUPERUSER_PASSWORD"].value is None  # never inline


def test_the_secret_holds_the_key_the_pods_read() -> None:
    kustomization = Path(REPO_ROOT / "_dev-env" / "k8s" / "postgres" / "kustomization.yaml")
    generator = yaml.safe_load(kustomization.read_text())["secretGenerator"][0]
    assert generator["name"] == POSTGRES_SECRET
    assert any(lit.startswith("POSTGRES_PASSWORD=") for lit in generator["literals"])
