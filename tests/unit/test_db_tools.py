"""db-tools: the cluster runs local mode's Adminer release, wrapper, flags and connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conceptor.platform.devservices import db_tools
from conceptor.platform.settings import Settings
from conceptor.platform.tools import versions
from tests.unit.k8s_support import DEV_ENV, by_kind, containers, render_base


def _pod() -> tuple[dict[str, Any], dict[str, Any]]:
    objects = render_base()
    deployment = by_kind(objects, "Deployment")["localdev-db-tools"]
    return next(containers(deployment)), deployment["spec"]["template"]["spec"]


def test_connection_env_comes_from_the_settings_dsn() -> None:
    """Host, port, role, password and database are the settings' DSN, quoted parts decoded."""
    settings = Settings(port_prefix="462", environment="test")
    assert db_tools.connection_env(settings) == {
        "DB_TOOLS_SERVER": "127.0.0.1:46210",
        "DB_TOOLS_USER": "conceptor",
        "DB_TOOLS_PASSWORD": "conceptor-dev-postgres",
        "DB_TOOLS_DB": "conceptor",
    }
    override = Settings(
        environment="test",
        postgres_dsn_override="postgresql://app%40x:p%2Fw%3A1@db.example:6543/my%20db",
    )
    assert db_tools.connection_env(override) == {
        "DB_TOOLS_SERVER": "db.example:6543",
        "DB_TOOLS_USER": "app@x",
        "DB_TOOLS_PASSWORD": "p/w:1",
        "DB_TOOLS_DB": "my db",
    }


def test_pod_runs_the_pinned_adminer_with_local_modes_flags(tmp_path: Path) -> None:
    """Same release, same PHP settings and the very wrapper file; only addresses differ."""
    container, _spec = _pod()
    assert container["image"] == f"adminer:{versions()['ADMINER_VERSION']}-standalone"
    settings = Settings(port_prefix="462", environment="test")
    local = db_tools.command(settings, tmp_path)
    pod = container["command"]
    assert [Path(local[0]).name, *local[1:2]] == pod[:2] == ["php", "-S"]
    assert (pod[2], local[2]) == ("0.0.0.0:8080", "127.0.0.1:46221")
    local_ini = [local[i + 1] for i, word in enumerate(local) if word == "-d"]
    pod_ini = [pod[i + 1] for i, word in enumerate(pod) if word == "-d"]
    assert [v.split("=")[0] for v in pod_ini] == [v.split("=")[0] for v in local_ini]
    assert pod_ini[2:] == local_ini[2:]  # all but where sessions and scratch files go
    assert pod_ini[:2] == ["session.save_path=/tmp", "upload_tmp_dir=/tmp"]
    assert (Path(pod[-1]).name, local[-1]) == ("db-tools.php", str(db_tools.WRAPPER))


def test_pod_mounts_the_wrapper_and_reads_the_postgres_secret() -> None:
    """The ConfigMap is db-tools.php byte for byte; credentials come from localdev-postgres."""
    container, spec = _pod()
    objects = render_base()
    (wrapper,) = [
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and o["metadata"]["name"].startswith("localdev-db-tools-wrapper-")
    ]
    assert wrapper["data"] == {"db-tools.php": db_tools.WRAPPER.read_text()}
    assert db_tools.WRAPPER == DEV_ENV / "db-tools.php"
    assert spec["volumes"] == [
        {"name": "wrapper", "configMap": {"name": wrapper["metadata"]["name"]}}
    ]
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    secret = {"name": "localdev-postgres"}
    assert env == {
        "ADMINER_PHP": "/var/www/html/adminer.php",
        "DB_TOOLS_SERVER": "localdev-postgres:5432",
        "DB_TOOLS_USER": secret | {"key": "APP_USER"},
        "DB_TOOLS_PASSWORD": secret | {"key": "APP_PASSWORD"},
        "DB_TOOLS_DB": secret | {"key": "APP_DB"},
    }
    assert set(env) - {"ADMINER_PHP"} == set(db_tools.connection_env(Settings()))


def test_pod_readiness_asks_for_the_tables_page() -> None:
    """The pod is ready when Adminer shows the tables heading, as local mode's probe requires."""
    container, _spec = _pod()
    command = container["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["php", "-r"]
    assert "http://127.0.0.1:8080/" in command[2]
    assert "\"<h3 id='tables-views'>\"" in command[2]
    assert db_tools._TABLES_HEADING == "<h3 id='tables-views'>"
