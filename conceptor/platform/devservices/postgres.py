"""PostgreSQL: its own cluster under .localdev/postgres (initdb on first run)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.settings import Settings
from conceptor.platform.tools import postgres_home, postgres_major

SUPERUSER = "postgres"
# What the server needs at run time; the rest of the installation is for building extensions.
_NOT_NEEDED_TO_RUN = shutil.ignore_patterns("*.a", "pgxs", "pkgconfig", "include")


class ClusterVersionError(RuntimeError):
    """The data directory holds a cluster of another PostgreSQL major than the pinned one."""


def _chown_to(path: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in (
            root,
            *(os.path.join(root, d) for d in dirs),
            *(os.path.join(root, f) for f in files),
        ):
            os.chown(name, entry.pw_uid, entry.pw_gid)


def _searchable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in (path.resolve(), *path.resolve().parents))


def _check_reachable(data_dir: Path) -> None:
    """The server runs as `postgres`: every parent of its data dir must be searchable by others."""
    if os.geteuid() != 0:
        return
    for parent in data_dir.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            msg = (
                f"{parent} is not searchable by the {SUPERUSER} user, so PostgreSQL cannot reach "
                f"{data_dir}: `chmod o+x {parent}` or set CENTRAL_LOCALDEV_DIR elsewhere"
            )
            raise RuntimeError(msg)


def _refuse_other_major(cluster: Path) -> None:
    """A cluster made by another major cannot be opened: stop before anything touches it."""
    stamp = cluster / "PG_VERSION"
    if not stamp.exists():
        return
    found, wanted = stamp.read_text().strip(), str(postgres_major())
    if found == wanted:
        return
    msg = (
        f"{cluster} holds a PostgreSQL {found} cluster, and this stack runs PostgreSQL {wanted}, "
        "which cannot open it; nothing was changed. To start with an empty database (the "
        "provision step re-applies the migrations): `conceptor dev reset postgres`, then start "
        f"again. To keep the data, dump it with PostgreSQL {found} first, then reset and restore "
        f"(README.md, Troubleshooting, 'A PostgreSQL {found} data directory')"
    )
    raise ClusterVersionError(msg)


def _server_home(data_dir: Path) -> Path:
    """The installation the server runs from.

    Started as root, the server runs as the `postgres` user, who often cannot reach the tool
    cache (a home directory is usually 0700). It then runs from a hard-linked copy next to
    the data directory, whose parents are checked to be reachable.
    """
    home = postgres_home()
    if os.geteuid() != 0 or _searchable_by_others(home):
        return home
    return data_dir.parent / f".{home.name}"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def _ensure_server_home(data_dir: Path) -> Path:
    home = _server_home(data_dir)
    source = postgres_home()
    if home == source or home.exists():
        return home
    # Built aside and renamed into place, so a concurrent start never sees half a copy.
    partial = Path(tempfile.mkdtemp(dir=home.parent, prefix=f"{home.name}.partial-"))
    try:
        shutil.copytree(
            source,
            partial / "pg",
            symlinks=True,
            ignore=_NOT_NEEDED_TO_RUN,
            copy_function=_link_or_copy,
        )
        try:
            (partial / "pg").rename(home)
        except OSError:
            if not home.exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return home


def prepare(settings: Settings, data_dir: Path) -> None:
    cluster = data_dir / "data"
    _refuse_other_major(cluster)
    data_dir.mkdir(parents=True, exist_ok=True)
    _check_reachable(data_dir)
    home = _ensure_server_home(data_dir)
    if (cluster / "PG_VERSION").exists():
        return
    _chown_to(data_dir, SUPERUSER)
    with tempfile.NamedTemporaryFile("w", dir=data_dir, delete=False) as pwfile:
        pwfile.write(settings.postgres_superuser_password.get_secret_value())
    pw_path = Path(pwfile.name)
    _chown_to(pw_path, SUPERUSER)
    try:
        argv = [
            str(home / "bin" / "initdb"),
            "-D",
            str(cluster),
            "-U",
            SUPERUSER,
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            f"--pwfile={pw_path}",
            "--encoding=UTF8",
            "--no-instructions",
        ]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(cluster, ignore_errors=True)
            msg = f"initdb of {cluster} failed: {result.stderr.strip() or result.stdout.strip()}"
            raise RuntimeError(msg)
    finally:
        pw_path.unlink(missing_ok=True)


def command(settings: Settings, data_dir: Path) -> list[str]:
    return [
        str(_server_home(data_dir) / "bin" / "postgres"),
        "-D",
        str(data_dir / "data"),
        "-p",
        str(settings.port("postgres")),
        "-c",
        f"listen_addresses={settings.host}",
        "-c",
        f"unix_socket_directories={data_dir}",
        "-c",
        "fsync=off",  # a dev database: speed over crash safety of the host
        "-c",
        "max_connections=200",
    ]


async def bootstrap(settings: Settings) -> None:
    """Create the application role and database (owned by it) if absent, like the image's env."""
    import asyncpg

    conn = await asyncpg.connect(
        host=settings.host,
        port=settings.port("postgres"),
        user=SUPERUSER,
        password=settings.postgres_superuser_password.get_secret_value(),
        database="postgres",
        timeout=5,
    )
    try:
        role, db = settings.postgres_user, settings.postgres_db
        password = settings.postgres_password.get_secret_value()
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        quoted_pw = password.replace("'", "''")
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(f"{verb} ROLE \"{role}\" LOGIN PASSWORD '{quoted_pw}'")
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db):
            await conn.execute(f'CREATE DATABASE "{db}" OWNER "{role}"')
    finally:
        await conn.close()


async def probe(settings: Settings) -> str:
    # Imported here: `conceptor dev …` stays quick to start when it only needs other services.
    import asyncpg

    try:
        conn = await asyncpg.connect(settings.postgres_dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise NotReadyError(f"cannot connect as the application role: {exc}") from exc
    try:
        version = await conn.fetchval("SELECT version()")
    finally:
        await conn.close()
    return str(version).split(" on ")[0]


SERVICE = DevService(
    name="postgres",
    description="PostgreSQL (own cluster, app role and database)",
    ports=("postgres",),
    prepare=prepare,
    command=command,
    probe=probe,
    post_start=bootstrap,
    run_as=SUPERUSER,
    start_timeout=60,
)
