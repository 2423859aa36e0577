"""Backing up one object version: note it in the ledger, claim it, copy it, record the outcome.

The copy runs outside any transaction (an upload may take minutes, and on SQLite a
transaction holds the one write lock); the claim on the row keeps a second copier
away meanwhile. A failed copy is recorded, not raised: the message that asked for it
is done, and the reconciliation pass retries the row after its backoff.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from courier.backup import ledger
from courier.backup.transfer import BackupFailed, Encryption, copy_object
from courier.backup.tuning import BackupSettings
from courier.common.db.base import utcnow
from courier.common.db.models_backup import BackupEntry
from courier.common.logging import get_logger
from courier.common.metrics import BACKUP_BYTES, BACKUP_CONFIRMED, BACKUP_FAILURES
from courier.common.regions import Regions
from courier.common.storage import NotFound, sha256_of
from courier.common.uow import UnitOfWork

log = get_logger(__name__)


@dataclass(frozen=True)
class Item:
    """One object to back up: what Courier recorded of it (sha256 None: hash the source)."""

    tenant_id: uuid.UUID
    region: str
    key: str
    origin: str
    sha256: str | None = None
    size: int | None = None


@dataclass
class Copier:
    regions: Regions
    settings: BackupSettings

    def encryption(self, region: str) -> Encryption:
        stores = self.regions.stores(region)
        return Encryption(stores.sse, stores.kms_key_id)

    async def back_up(self, uow: UnitOfWork, item: Item, now: datetime | None = None) -> str:
        """Back up `item` unless its version is confirmed or being copied; the row's status
        afterwards ("unconfigured": the region has no backup store, "missing": the object
        is gone from the primary store)."""
        if not self.regions.is_configured(item.region) or self.regions.backup(item.region) is None:
            return "unconfigured"
        sha256, size = item.sha256, item.size
        if sha256 is None or size is None:
            try:
                sha256, size = await sha256_of(self.regions.primary(item.region), item.key)
            except NotFound:
                log.warning(
                    "object to back up is gone", key=item.key, tenant_id=str(item.tenant_id)
                )
                return "missing"
        now = now or utcnow()
        async with uow:
            entry = await ledger.note(
                uow.session,
                tenant_id=item.tenant_id,
                region=item.region,
                key=item.key,
                size=size,
                sha256=sha256,
                origin=item.origin,
                now=now,
            )
            entry_id, status = entry.id, entry.status
            if status == "confirmed":
                return status
            claimed = await ledger.claim(uow.session, entry_id, now, self.settings.claim)
        if not claimed:
            return status
        return await self._attempt(uow, entry_id, item.region, item.key, sha256, item.tenant_id)

    async def retry_due(
        self, uow: UnitOfWork, now: datetime | None = None, limit: int = 500
    ) -> int:
        """Copy again every unconfirmed row whose backoff has run out; returns how many."""
        now = now or utcnow()
        async with uow:
            rows = (
                await uow.session.execute(
                    select(
                        BackupEntry.id,
                        BackupEntry.region,
                        BackupEntry.key,
                        BackupEntry.sha256,
                        BackupEntry.tenant_id,
                    )
                    .where(ledger.due(now))
                    .order_by(BackupEntry.created_at)
                    .limit(limit)
                )
            ).all()
        done = 0
        for entry_id, region, key, sha256, tenant_id in rows:
            if not self.regions.is_configured(region) or self.regions.backup(region) is None:
                continue
            async with uow:
                claimed = await ledger.claim(uow.session, entry_id, now, self.settings.claim)
            if claimed:
                await self._attempt(uow, entry_id, region, key, sha256, tenant_id)
                done += 1
        return done

    async def _attempt(
        self,
        uow: UnitOfWork,
        entry_id: uuid.UUID,
        region: str,
        key: str,
        sha256: str,
        tenant_id: uuid.UUID,
    ) -> str:
        context = {"tenant_id": str(tenant_id), "region": region, "key": key}
        target = self.regions.backup(region)
        assert target is not None
        try:
            copied = await copy_object(
                self.regions.primary(region),
                key,
                target,
                expected_sha256=sha256,
                encryption=self.encryption(region),
                multipart_threshold=self.settings.multipart_threshold,
                multipart_chunk=self.settings.multipart_chunk,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = (
                exc
                if isinstance(exc, BackupFailed)
                else BackupFailed("error", f"{type(exc).__name__}: {exc}")
            )
            if failure.reason == "source_missing":
                async with uow:
                    await ledger.gone(uow.session, entry_id, str(failure), utcnow())
                BACKUP_FAILURES.labels(reason=failure.reason).inc()
                log.info("object gone before its backup", **context)
                return "deleted"
            async with uow:
                attempts = await ledger.fail(
                    uow.session,
                    entry_id,
                    f"{failure.reason}: {failure}",
                    utcnow(),
                    base=self.settings.retry_min_seconds,
                    cap=self.settings.retry_max_seconds,
                )
            BACKUP_FAILURES.labels(reason=failure.reason).inc()
            log.warning(
                "backup failed", reason=failure.reason, error=str(failure), attempts=attempts,
                **context,
            )  # fmt: skip
            return "failed"
        async with uow:
            await ledger.confirm(uow.session, entry_id, copied, utcnow())
        BACKUP_BYTES.labels(region=region).inc(copied.size)
        BACKUP_CONFIRMED.labels(region=region).inc()
        log.info("backed up", size=copied.size, version_id=copied.version_id, **context)
        return "confirmed"
