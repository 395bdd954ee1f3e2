"""Building the config-sync pieces from settings: the S3 store, the local cache, the config key."""

from __future__ import annotations

from pathlib import Path

from tokenward.configsync.seal import ConfigKey
from tokenward.configsync.sync import CACHE_DIR
from tokenward.errorcodes import ErrorCode
from tokenward.errors import ConfigError
from tokenward.settings import Settings
from tokenward.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore, S3Config

__all__ = ["cache_store", "config_key", "remote_store", "require_remote", "s3_config"]


def s3_config(settings: Settings) -> S3Config | None:
    """The S3 settings, or None when no bucket is configured (config sync off)."""
    if not settings.s3_bucket:
        return None
    if bool(settings.s3_access_key) != bool(settings.s3_secret_key):
        raise ConfigError(
            "TOKENWARD_S3_ACCESS_KEY and TOKENWARD_S3_SECRET_KEY must be set together", code=ErrorCode.SETTING_INVALID
        )
    return S3Config(
        bucket=settings.s3_bucket,
        url=settings.s3_url,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        region=settings.s3_region,
        timeout=settings.s3_timeout_seconds,
    )


def remote_store(settings: Settings) -> BlobStore | None:
    """The S3 store of the shared bundle, or None when config sync is off."""
    config = s3_config(settings)
    return None if config is None else S3BlobStore(config)


def require_remote(settings: Settings) -> BlobStore:
    store = remote_store(settings)
    if store is None:
        raise ConfigError(
            "no S3 bucket configured: set TOKENWARD_S3_BUCKET (and TOKENWARD_S3_URL, TOKENWARD_S3_ACCESS_KEY, "
            "TOKENWARD_S3_SECRET_KEY)",
            code=ErrorCode.S3_NOT_CONFIGURED,
        )
    return store


def cache_store(data_dir: Path) -> LocalBlobStore:
    """The last-known-good copy of the bundle, ``<data_dir>/configsync/``."""
    return LocalBlobStore(data_dir / CACHE_DIR)


def config_key(settings: Settings) -> ConfigKey | None:
    return None if settings.config_key is None else ConfigKey.parse(settings.config_key.get_secret_value())
