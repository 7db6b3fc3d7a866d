"""Keycloak: `kc.sh start-dev` from the Maven Central distribution, on the machine's JDK."""

from __future__ import annotations

from pathlib import Path

import httpx

from conceptor.platform.devservices.spec import DevService, NotReadyError
from conceptor.platform.http import client as http_client
from conceptor.platform.keycloak_tokens import AdminTokenRefusedError, admin_token
from conceptor.platform.settings import Settings
from conceptor.platform.tools import cached_tool


def command(settings: Settings, data_dir: Path) -> list[str]:
    kc = cached_tool("keycloak", "KEYCLOAK_VERSION", "bin/kc.sh")
    return [
        str(kc),
        "start-dev",
        "--http-host",
        settings.host,
        "--http-port",
        str(settings.port("keycloak")),
        "--http-management-port",
        str(settings.port("keycloak_management")),
        "--health-enabled=true",
        # The dev-file database lives under .localdev so that `dev reset keycloak` wipes it.
        f"--db-url=jdbc:h2:file:{data_dir / 'h2' / 'keycloakdb'};NON_KEYWORDS=VALUE",
    ]


def environ(settings: Settings, data_dir: Path) -> dict[str, str]:
    return {
        # Only used on the first start, when the database holds no admin yet.
        "KC_BOOTSTRAP_ADMIN_USERNAME": settings.keycloak_admin_user,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": settings.keycloak_admin_password.get_secret_value(),
        "JAVA_OPTS_APPEND": f"-Djava.io.tmpdir={data_dir / 'tmp'}",
        # Realm files of 50 000 users: Keycloak creates a realm from one request body (Quarkus
        # refuses bodies over 10 MiB by default: 50 000 users are 14 MB) in one transaction,
        # which outgrows the dev heap (512 MB). A limit, not a reservation: idle, it stays small.
        "QUARKUS_HTTP_LIMITS_MAX_BODY_SIZE": "256M",
        "JAVA_OPTS_KC_HEAP": "-Xms256m -Xmx2g",
    }


def prepare(_settings: Settings, data_dir: Path) -> None:
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)


async def probe(settings: Settings) -> str:
    # A port answering is not readiness: the admin user may not exist yet (401 on first calls).
    try:
        async with http_client(timeout=5) as client:
            await admin_token(settings, client)
            info = await client.get(f"{settings.keycloak_url}/realms/master")
            info.raise_for_status()
    except AdminTokenRefusedError as exc:
        raise NotReadyError(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise NotReadyError(f"Keycloak not answering: {exc}") from exc
    return "admin token issued by realm master"


SERVICE = DevService(
    name="keycloak",
    description="Keycloak (start-dev, dev-file database)",
    ports=("keycloak", "keycloak_management"),
    prepare=prepare,
    command=command,
    environ=environ,
    probe=probe,
    start_timeout=240,
    stop_timeout=30,
    links={"Keycloak admin": "http://localhost:{keycloak}/admin/"},
)
