"""Database tools: Adminer on every declared database, under PHP's built-in web server."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from conceptor.platform import environment
from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.http import client as http_client
from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import adminer_php, system_tool

# The wrapper both infra modes serve: it connects with the DB_TOOLS_* environment, no login form.
WRAPPER = REPO_ROOT / "_dev-env" / "db-tools.php"
_TABLES_HEADING = "<h3 id='tables-views'>"
_VERSION = re.compile(r'class="version">([^<]+)<')


def connection_env(settings: Settings) -> dict[str, str]:
    """DB_TOOLS_* for the wrapper, from the settings' DSN (CENTRAL_POSTGRES_DSN wins)."""
    dsn = urlsplit(settings.postgres_dsn)
    return {
        "DB_TOOLS_SERVER": f"{dsn.hostname}:{dsn.port or 5432}",
        "DB_TOOLS_USER": unquote(dsn.username or ""),
        "DB_TOOLS_PASSWORD": unquote(dsn.password or ""),
        "DB_TOOLS_DB": unquote(dsn.path.lstrip("/")),
    }


def start_url(settings: Settings) -> str:
    """The page that lists the application's tables (the wrapper redirects `/` there)."""
    return f"http://{settings.host}:{settings.port('db_tools')}/"


def prepare(_settings: Settings, data_dir: Path) -> None:
    # PHP keeps Adminer's sessions here (they never hold the password; see the wrapper), and
    # Adminer its scratch files (not the machine's /tmp, shared with every other instance).
    for sub in ("sessions", "tmp"):
        (data_dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)


def command(settings: Settings, data_dir: Path) -> list[str]:
    adminer_php()  # fail early, naming what to install, rather than on the first request
    return [
        str(system_tool("php")),
        "-S",
        f"{settings.host}:{settings.port('db_tools')}",
        "-t",
        str(data_dir),
        "-d",
        f"session.save_path={data_dir / 'sessions'}",
        "-d",
        f"upload_tmp_dir={data_dir / 'tmp'}",
        # PHP's warnings go to the log, never into a page: Adminer 4.8 (older than PHP 8.2)
        # triggers some, and inside its JSON answers they break the page's scripts.
        "-d",
        "display_errors=0",
        "-d",
        "log_errors=1",
        # A router script: every request, Adminer's own static files included, goes through it.
        str(WRAPPER),
    ]


def declared_databases(settings: Settings) -> list[str]:
    """Every database to browse: the settings' first, then the environment file's others
    (only the settings' one while the file is refused)."""
    first = connection_env(settings)["DB_TOOLS_DB"]
    try:
        declared = [d.name for d in environment.load(environment.default_file()).databases]
    except environment.EnvironmentFileError:
        declared = []
    # The file's first database is the one settings name (CENTRAL_POSTGRES_DB may rename it).
    return list(dict.fromkeys([first, *declared[1:]]))


def environ(settings: Settings, _data_dir: Path) -> dict[str, str]:
    return {
        **connection_env(settings),
        "DB_TOOLS_DATABASES": ",".join(declared_databases(settings)),
        "ADMINER_PHP": str(adminer_php()),
    }


async def probe(settings: Settings) -> str:
    """Ready = Adminer, logged in as the app role, shows the database's tables page."""
    try:
        async with http_client(timeout=5, follow_redirects=True) as http:
            resp = await http.get(start_url(settings))
    except httpx.HTTPError as exc:
        raise NotReadyError(f"db-tools not answering: {exc}") from exc
    if resp.status_code != 200 or _TABLES_HEADING not in resp.text:
        msg = f"db-tools answered {resp.status_code} without the tables of {settings.postgres_db}"
        raise NotReadyError(msg)
    version = _VERSION.search(resp.text)
    return f"adminer {version.group(1) if version else '?'} on database {settings.postgres_db}"


SERVICE = DevService(
    name="db-tools",
    description="Adminer, a web database browser on every declared database",
    ports=("db_tools",),
    prepare=prepare,
    command=command,
    environ=environ,
    probe=probe,
    # Ready needs PostgreSQL too, which may start alongside it (initdb included): wait for it.
    start_timeout=120,
    links={"Database tools": "http://localhost:{db_tools}"},
)
