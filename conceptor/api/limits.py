"""Request-body rules per route: content type (415) and size, enforced while streaming (413)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class BodyRule:
    """At most `max_bytes`; when `content_types` is set, a body must declare one of them."""

    max_bytes: int
    content_types: tuple[str, ...] = ()


def too_large_detail(limit: int) -> str:
    return f"request body exceeds the limit of {limit} bytes"


class BodyTooLargeError(HTTPException):
    """The body grew past the limit while streaming (an HTTPException, so body parsers keep it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(limit))


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_type_error(scope: Scope, rule: BodyRule) -> str | None:
    """Why the declared content type is refused, or None when it is fine."""
    if not rule.content_types:
        return None
    declared = _header(scope, b"content-type")
    length = _header(scope, b"content-length")
    has_body = declared is not None or length not in (None, "0")
    if not has_body and _header(scope, b"transfer-encoding") is None:
        return None  # no body at all: the route decides whether one is required
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type in rule.content_types:
        return None
    allowed = " or ".join(rule.content_types)
    return f"unsupported content type {media_type or '(none)'!r}: send {allowed}"


class BodyLimitMiddleware:
    """415 for a content type the route does not take; 413 past the route's size limit."""

    def __init__(self, app: ASGIApp, *, rule_for: Callable[[Scope], BodyRule]) -> None:
        self.app = app
        self.rule_for = rule_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        rule = self.rule_for(scope)
        refused = _content_type_error(scope, rule)
        if refused is not None:
            await _send_json(send, 415, refused)
            return
        limit = rule.max_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # Refused before a byte of the body is read.
            await _send_json(send, 413, too_large_detail(limit))
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError:
            if started:
                raise
            await _send_json(send, 413, too_large_detail(limit))
