"""Documented error answers, so the OpenAPI schema lists every status the API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """An error with a precise, human-readable reason."""

    detail: str


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


# Every route that needs a token or Temporal can answer these.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _doc("missing, malformed, expired or forged bearer token"),
    403: _doc("the token lacks the required realm role"),
    503: _doc("a dependency (Temporal, Keycloak, PostgreSQL, MinIO) is unreachable"),
}
# Routes that take a body can also answer these.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("the body could not be parsed (e.g. a multipart body without a boundary)"),
    413: _doc("the body exceeds the size limit"),
    415: _doc("unsupported content type"),
}
