"""Thumbnail rendering with Pillow: pure, CPU-bound, no I/O (runs in a worker's blocking pool)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")
THUMBNAIL_FORMAT = "JPEG"
THUMBNAIL_CONTENT_TYPE = "image/jpeg"


class MediaRejectedError(ValueError):
    """The file can never become thumbnails; `kind` names why (a non-retryable error type)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Rendered:
    width: int
    height: int
    source_format: str
    thumbnails: dict[int, bytes]  # longest edge -> JPEG bytes


def _open(data: bytes, *, filename: str, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        msg = f"{filename} is not a supported image (supported: {', '.join(SUPPORTED_FORMATS)})"
        raise MediaRejectedError("UnsupportedMedia", msg) from None
    fmt = image.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        msg = f"{filename} is a {fmt} image; supported: {', '.join(SUPPORTED_FORMATS)}"
        raise MediaRejectedError("UnsupportedMedia", msg)
    width, height = image.size
    if width * height > max_pixels:
        msg = f"{filename} is {width}x{height} pixels, more than the limit of {max_pixels}"
        raise MediaRejectedError("ImageTooLarge", msg)
    return image


def render_thumbnails(data: bytes, sizes: list[int], *, filename: str, max_pixels: int) -> Rendered:
    """Decode once, then shrink largest-first; raises MediaRejectedError for bad input."""
    image = _open(data, filename=filename, max_pixels=max_pixels)
    fmt = image.format or "unknown"
    width, height = image.size
    largest = max(sizes)
    # JPEG can decode straight at a reduced scale: far less work for big photos.
    image.draft("RGB", (largest, largest))
    try:
        image.load()
        image = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        msg = f"{filename} is a corrupt {fmt} image: {exc}"
        raise MediaRejectedError("CorruptImage", msg) from None
    thumbnails: dict[int, bytes] = {}
    current = image
    for size in sorted(set(sizes), reverse=True):
        current = current.copy()
        current.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        current.save(out, THUMBNAIL_FORMAT, quality=85)
        thumbnails[size] = out.getvalue()
    return Rendered(width=width, height=height, source_format=fmt, thumbnails=thumbnails)
