"""Thumbnail rendering (pure Pillow logic): sizes, refusals with their exact reasons."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.central.imaging import MediaRejectedError, render_thumbnails


def _image(width: int, height: int, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, fmt)
    return out.getvalue()


def test_render_thumbnails_fits_longest_edge() -> None:
    """Each size bounds the longest edge and keeps the aspect ratio; output is JPEG."""
    rendered = render_thumbnails(
        _image(640, 480, "PNG"), [512, 128], filename="a.png", max_pixels=10**8
    )
    assert (rendered.width, rendered.height, rendered.source_format) == (640, 480, "PNG")
    sizes = {s: Image.open(io.BytesIO(b)).size for s, b in rendered.thumbnails.items()}
    formats = {Image.open(io.BytesIO(b)).format for b in rendered.thumbnails.values()}
    assert sizes == {512: (512, 384), 128: (128, 96)}
    assert formats == {"JPEG"}


def test_render_thumbnails_refuses_text() -> None:
    """A non-image is UnsupportedMedia, named by its filename."""
    with pytest.raises(MediaRejectedError) as err:
        render_thumbnails(b"hello\n" * 20, [128], filename="notes.txt", max_pixels=10**8)
    assert (err.value.kind, err.value.reason) == (
        "UnsupportedMedia",
        "notes.txt is not a supported image (supported: JPEG, PNG, WEBP)",
    )


def test_render_thumbnails_refuses_other_formats() -> None:
    """A real image in a format outside the list is refused with its format."""
    with pytest.raises(MediaRejectedError) as err:
        render_thumbnails(_image(10, 10, "GIF"), [128], filename="x.gif", max_pixels=10**8)
    assert err.value.reason == "x.gif is a GIF image; supported: JPEG, PNG, WEBP"


def test_render_thumbnails_refuses_truncated_png() -> None:
    """A PNG cut in half is CorruptImage with Pillow's reason."""
    data = _image(640, 480, "PNG")
    with pytest.raises(MediaRejectedError) as err:
        render_thumbnails(data[: len(data) // 2], [128], filename="t.png", max_pixels=10**8)
    assert (err.value.kind, err.value.reason) == (
        "CorruptImage",
        "t.png is a corrupt PNG image: image file is truncated",
    )


def test_render_thumbnails_refuses_too_many_pixels() -> None:
    """The pixel limit is checked from the header, before decoding."""
    with pytest.raises(MediaRejectedError) as err:
        render_thumbnails(_image(200, 100, "PNG"), [128], filename="big.png", max_pixels=10_000)
    assert (err.value.kind, err.value.reason) == (
        "ImageTooLarge",
        "big.png is 200x100 pixels, more than the limit of 10000",
    )
