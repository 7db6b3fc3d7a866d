"""Media through the front-door: an upload becomes `ready` with thumbnails; bad input is refused."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.api_helpers import ApiStack
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_stack"]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 110, 200)).save(out, format="PNG")
    return out.getvalue()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def api(api_stack: ApiStack, workers: None) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{api_stack.front_door}/api", timeout=30) as client:
        yield client


async def test_upload_image_becomes_ready_with_downloadable_thumbnails(
    api_stack: ApiStack, api: httpx.Client, user_token: str, provisioned: Any
) -> None:
    """POST /api/media → 202 pending; the media worker makes it `ready` with both thumbnails."""
    name = f"photo-{uuid.uuid4().hex[:8]}.png"
    resp = api.post(
        "/media", files={"file": (name, png(640, 480), "image/png")}, headers=bearer(user_token)
    )
    assert resp.status_code == 202, resp.text
    created = resp.json()
    assert created["status"] == "pending"
    assert created["filename"] == name
    assert created["content_type"] == "image/png"

    async def ready() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=f"{api_stack.front_door}/api") as client:
            got = await client.get(f"/media/{created['id']}", headers=bearer(user_token))
        asset: dict[str, Any] = got.json()
        assert asset["status"] == "ready", asset
        return asset

    asset = await assert_eventually(ready, timeout=60, interval=0.3)
    assert (asset["width"], asset["height"]) == (640, 480)
    assert sorted(asset["thumbnail_urls"]) == ["128", "512"]
    for size, url in asset["thumbnail_urls"].items():
        thumb = httpx.get(url)  # the thumbnails bucket is public-read: no credentials
        assert thumb.status_code == 200, url
        assert thumb.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(thumb.content))
        assert max(image.size) == int(size)

    page = api.get("/media", params={"limit": 100}, headers=bearer(user_token)).json()
    assert created["id"] in [item["id"] for item in page["items"]]
    status = api.get("/status").json()
    recent = {m["id"]: m for m in status["card"]["items"]}
    assert recent[created["id"]] == {
        "id": created["id"],
        "label": name,
        "status": "ready",
        "image_url": asset["thumbnail_urls"]["128"],
    }


def test_upload_needs_a_token(api: httpx.Client) -> None:
    """Uploading without a token is 401."""
    resp = api.post("/media", files={"file": ("a.png", png(8, 8), "image/png")})
    assert resp.status_code == 401
    assert resp.json() == {"detail": "missing bearer token"}


def test_upload_of_wrong_file_type_is_415(api: httpx.Client, user_token: str) -> None:
    """A part declared text/plain is not an image upload."""
    resp = api.post(
        "/media", files={"file": ("notes.txt", b"hello", "text/plain")}, headers=bearer(user_token)
    )
    assert resp.status_code == 415
    assert resp.json() == {
        "detail": "unsupported file type 'text/plain': upload one of image/jpeg, image/png, "
        "image/webp"
    }


def test_upload_as_json_is_415(api: httpx.Client, user_token: str) -> None:
    """The upload takes multipart/form-data only."""
    resp = api.post("/media", json={"file": "x"}, headers=bearer(user_token))
    assert resp.status_code == 415
    assert resp.json() == {
        "detail": "unsupported content type 'application/json': send multipart/form-data"
    }


def test_upload_without_file_field_is_422(api: httpx.Client, user_token: str) -> None:
    """A multipart body without the `file` field names the missing field."""
    resp = api.post(
        "/media", files={"other": ("a.png", png(8, 8), "image/png")}, headers=bearer(user_token)
    )
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert (error["type"], error["loc"]) == ("missing", ["body", "file"])


def test_upload_over_the_declared_limit_is_413(
    api_stack: ApiStack, api: httpx.Client, user_token: str
) -> None:
    """A Content-Length past the limit is refused before the body is read."""
    limit = api_stack.settings.api_max_upload_bytes
    resp = api.post(
        "/media",
        files={"file": ("big.png", b"\0" * (limit + 1), "image/png")},
        headers=bearer(user_token),
    )
    assert resp.status_code == 413
    assert resp.json() == {"detail": f"request body exceeds the limit of {limit} bytes"}


def test_streamed_upload_past_the_limit_is_413(
    api_stack: ApiStack, api: httpx.Client, user_token: str
) -> None:
    """A chunked body (no Content-Length) is cut off once it passes the limit."""
    limit = api_stack.settings.api_max_upload_bytes
    boundary = "conceptor-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    chunk = b"\0" * 65536
    chunks = limit // len(chunk) + 2  # more than the limit, whatever the framing

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(chunks):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = api.post(
        "/media",
        content=body(),
        headers={
            **bearer(user_token),
            "content-type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert "content-length" not in resp.request.headers
    assert resp.status_code == 413
    assert resp.json() == {"detail": f"request body exceeds the limit of {limit} bytes"}


def test_unknown_media_id_is_404(api: httpx.Client, user_token: str) -> None:
    """A well-formed id that names no asset."""
    missing = uuid.uuid4()
    resp = api.get(f"/media/{missing}", headers=bearer(user_token))
    assert resp.status_code == 404
    assert resp.json() == {"detail": f"media asset {missing} not found"}


def test_malformed_media_id_is_422(api: httpx.Client, user_token: str) -> None:
    """An id that is not a UUID is a validation error, not a lookup."""
    resp = api.get("/media/not-a-uuid", headers=bearer(user_token))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["type"] == "uuid_parsing"


def test_media_page_bounds_are_validated(api: httpx.Client, user_token: str) -> None:
    """limit must be 1..100."""
    resp = api.get("/media", params={"limit": 0}, headers=bearer(user_token))
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", "limit"]


def test_provision_with_malformed_json_is_422(api: httpx.Client, admin_token: str) -> None:
    """A body that is not JSON gets 422 json_invalid."""
    resp = api.post(
        "/provision",
        content=b'{"steps": [',
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["type"] == "json_invalid"


def test_provision_with_unknown_step_is_422(api: httpx.Client, admin_token: str) -> None:
    """Steps are validated against the workflow's step names."""
    resp = api.post("/provision", json={"steps": ["format_disk"]}, headers=bearer(admin_token))
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert (error["type"], error["loc"]) == ("literal_error", ["body", "steps", 0])


def test_provision_with_text_body_is_415(api: httpx.Client, admin_token: str) -> None:
    """The provisioning request takes JSON only."""
    resp = api.post(
        "/provision",
        content=b"steps=all",
        headers={**bearer(admin_token), "content-type": "text/plain"},
    )
    assert resp.status_code == 415
    assert resp.json() == {"detail": "unsupported content type 'text/plain': send application/json"}


def test_provision_body_past_the_limit_is_413(
    api_stack: ApiStack, api: httpx.Client, admin_token: str
) -> None:
    """JSON bodies have their own, smaller limit."""
    limit = api_stack.settings.api_max_body_bytes
    resp = api.post(
        "/provision",
        content=b'{"steps": [' + b" " * limit + b"]}",
        headers={**bearer(admin_token), "content-type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.json() == {"detail": f"request body exceeds the limit of {limit} bytes"}
