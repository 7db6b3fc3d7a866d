"""The example service's own settings (env prefix CENTRAL_MEDIA_): the platform reads none."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

from conceptor.platform.settings import REPO_ROOT


class MediaSettings(BaseSettings):
    """How uploads become thumbnails (services/central/activities.py, client.py)."""

    # The same .env.development as the platform's settings: one file for a developer's knobs.
    model_config = SettingsConfigDict(
        env_prefix="CENTRAL_MEDIA_",
        env_file=REPO_ROOT / ".env.development",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    thumbnail_sizes: tuple[int, ...] = (128, 512)  # longest edge, pixels
    max_image_pixels: int = 64_000_000  # larger images are refused (decompression bombs)
    heartbeat_timeout_seconds: float = 10.0  # a dead worker's task moves after this


@lru_cache(maxsize=1)
def get_media_settings() -> MediaSettings:
    """The process-wide media settings, read once from the environment and .env.development."""
    return MediaSettings()
