"""The backup service's own settings (`COURIER_BACKUP_*`), read once per process."""

from __future__ import annotations

from datetime import timedelta

from pydantic_settings import BaseSettings, SettingsConfigDict

from courier.backup.transfer import MULTIPART_CHUNK, MULTIPART_THRESHOLD


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COURIER_BACKUP_", extra="ignore")

    # How often the reconciliation pass lists every region's primary store, copies what
    # has no confirmed backup and retries failed copies whose backoff has run out.
    reconcile_seconds: float = 300.0
    # How often the retention job deletes what tenants' retention lets go (one replica).
    retention_seconds: float = 3600.0
    # Backoff of a failed copy: doubling from the first to at most the second.
    retry_min_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    # A copy in progress keeps its row this long; a copier that died frees it after.
    claim_seconds: float = 900.0
    # Objects younger than this are left to the event that announces them.
    reconcile_min_age_seconds: float = 60.0
    # Objects from this size up go as a multipart upload (a checksum per part).
    multipart_threshold: int = MULTIPART_THRESHOLD
    # The size of each part (S3: at least 5 MiB, at most 10,000 parts).
    multipart_chunk: int = MULTIPART_CHUNK

    @property
    def claim(self) -> timedelta:
        return timedelta(seconds=self.claim_seconds)
