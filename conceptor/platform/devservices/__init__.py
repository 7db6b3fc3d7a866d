"""The registry of local dev services that `conceptor dev serve` can run."""

from __future__ import annotations

from conceptor.platform.devservices import (
    db_tools,
    front_door,
    keycloak,
    mailpit,
    minio,
    postgres,
    redis,
    temporal,
)
from conceptor.platform.devservices.spec import DevService, NotReadyError

SERVICES: dict[str, DevService] = {
    svc.name: svc
    for svc in (
        postgres.SERVICE,
        redis.SERVICE,
        temporal.SERVICE,
        keycloak.SERVICE,
        minio.SERVICE,
        mailpit.SERVICE,
        front_door.SERVICE,
        db_tools.SERVICE,
    )
}


class UnknownServiceError(KeyError):
    """A service name that is not one of SERVICES."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_service(name: str) -> DevService:
    try:
        return SERVICES[name]
    except KeyError:
        msg = f"unknown service {name!r}; valid services: {', '.join(SERVICES)}"
        raise UnknownServiceError(msg) from None


__all__ = ["SERVICES", "DevService", "NotReadyError", "UnknownServiceError", "get_service"]
