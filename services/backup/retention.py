"""Retention: a tenant's files leave the primary and the backup store after its set days.

Days are per tenant and per store (`Tenant.retention_days_primary` / `_backup`, None:
kept forever). A scheduled job of the backup service applies them, one replica at a
time (a lease on the `backup_passes` row `retention`).

It never deletes what is still needed, whatever its age:
- the stored file of an import awaiting approval (its change set is applied from it);
- a file an unresolved incident names (someone is looking into it): by file name, by
  the received file's id, or by a storage key in the incident's details;
- from the primary store, an object with no confirmed backup of its current content
  (the promise is that nothing is lost: a region without a backup store deletes nothing
  from its primary store).

Primary deletions go through the regional storage interface (so they stay inside the
tenant's region); backup deletions remove the very versions the ledger recorded. Each
deletion is written into the ledger row of that version with when and why: a backup
removed becomes `deleted`; an object removed from the primary store keeps its
`confirmed` backup, restorable until the backup's own retention runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from courier.backup.passes import once_per
from courier.backup.transfer import is_s3
from courier.backup.tuning import BackupSettings
from courier.common.areas import is_temporary_name
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Import, Tenant
from courier.common.db.models_backup import BackupEntry
from courier.common.db.models_incidents import Incident
from courier.common.logging import get_logger
from courier.common.regions import RegionalStorage
from courier.common.storage import NotFound, Storage
from courier.common.tasks import uninterrupted

log = get_logger(__name__)

PASS_ID = "retention"
# Keys in an incident's details that name a stored object outright.
_KEY_DETAILS = ("key", "storage_key", "result_key")
# Keys in an incident's details that name a file (a name or an area path).
_NAME_DETAILS = ("file", "name", "path", "file_name")


@dataclass
class Holds:
    """What a tenant's held imports and open incidents still need."""

    keys: dict[str, str] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def reason(self, key: str) -> str | None:
        """Why `key` must stay, or None when nothing holds it."""
        if key in self.keys:
            return self.keys[key]
        for prefix, why in self.prefixes.items():
            if key.startswith(prefix):
                return why
        return self.names.get(posixpath.basename(key))


async def holds_of(session: Any, tenant: Tenant) -> Holds:
    holds = Holds()
    held = (
        await session.execute(
            select(Import.id, Import.file_id, Import.storage_key, Import.result_key).where(
                Import.tenant_id == tenant.id,
                Import.status.in_(("awaiting_approval", "scheduled")),
            )
        )
    ).all()
    for import_id, file_id, storage_key, result_key in held:
        why = f"import {import_id} awaits approval or its apply window"
        holds.keys[storage_key] = why
        if result_key:
            holds.keys[result_key] = why
        holds.prefixes[f"tenants/{tenant.slug}/received/{file_id}/"] = why
    incidents = (
        await session.execute(
            select(Incident.id, Incident.kind, Incident.file_name, Incident.details).where(
                or_(Incident.tenant_id == tenant.id, Incident.tenant == tenant.slug),
                Incident.state != "resolved",
            )
        )
    ).all()
    for incident_id, kind, file_name, details in incidents:
        why = f"incident {incident_id} ({kind}) is not resolved"
        details = details or {}
        for name in (file_name, *(details.get(k) for k in _NAME_DETAILS)):
            if isinstance(name, str) and name.strip("/"):
                holds.names[posixpath.basename(name.rstrip("/"))] = why
        for k in _KEY_DETAILS:
            if isinstance(details.get(k), str):
                holds.keys[details[k]] = why
        if isinstance(details.get("file_id"), str):
            holds.prefixes[f"tenants/{tenant.slug}/received/{details['file_id']}/"] = why
    return holds


@dataclass
class Report:
    """What one run deleted and what it kept though old enough, with why."""

    primary_deleted: list[str] = field(default_factory=list)
    backup_deleted: list[tuple[str, str | None]] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)

    def keep(self, key: str, why: str, **context: Any) -> None:
        self.kept[key] = why
        log.info("retention keeps an old object", key=key, reason=why, **context)


@dataclass
class Retention:
    """Applies every tenant's retention; `storage` is the services' regional storage."""

    storage: RegionalStorage

    async def run(self, db: Database, now: datetime | None = None) -> Report:
        now = now or utcnow()
        report = Report()
        async with db.session() as session:
            tenants = list(
                await session.scalars(
                    select(Tenant)
                    .where(
                        or_(
                            Tenant.retention_days_primary.is_not(None),
                            Tenant.retention_days_backup.is_not(None),
                        )
                    )
                    .order_by(Tenant.slug)
                )
            )
        for tenant in tenants:
            try:
                await self.tenant(db, tenant, now, report)
            except Exception as exc:  # one tenant's store down must not hold back the others
                log.warning(
                    "retention not applied",
                    tenant=tenant.slug,
                    tenant_id=str(tenant.id),
                    error=f"{type(exc).__name__}: {exc}",
                )
        return report

    async def tenant(self, db: Database, tenant: Tenant, now: datetime, report: Report) -> None:
        async with db.session() as session:
            holds = await holds_of(session, tenant)
        if tenant.retention_days_primary is not None:
            await self._primary(db, tenant, holds, now, report)
        if tenant.retention_days_backup is not None:
            await self._backup(db, tenant, holds, now, report)

    # ------------------------------------------------------------ primary store

    async def _primary(
        self, db: Database, tenant: Tenant, holds: Holds, now: datetime, report: Report
    ) -> None:
        days = tenant.retention_days_primary
        assert days is not None
        cutoff = now - timedelta(days=days)
        context = {"tenant": tenant.slug, "tenant_id": str(tenant.id), "store": "primary"}
        old = [
            o
            for o in await self.storage.list(f"tenants/{tenant.slug}/")
            if o.modified < cutoff and not is_temporary_name(o.key)
        ]
        if not old:
            return
        async with db.session() as session:
            backed_up = (
                await session.execute(
                    select(
                        BackupEntry.id, BackupEntry.key, BackupEntry.size, BackupEntry.created_at
                    )
                    .where(
                        BackupEntry.tenant_id == tenant.id,
                        BackupEntry.key.in_([o.key for o in old]),
                        BackupEntry.confirmed_at.is_not(None),
                    )
                    .order_by(BackupEntry.created_at.desc())
                )
            ).all()
        why = f"retention: older than the tenant's {days} days in the primary store"
        for obj in old:
            held = holds.reason(obj.key)
            if held:
                report.keep(obj.key, held, **context)
                continue
            # A backup of this very content: made (from it) after it was last written.
            entry_id = next(
                (
                    entry_id
                    for entry_id, key, size, created in backed_up
                    if key == obj.key and size == obj.size and created >= obj.modified
                ),
                None,
            )
            if entry_id is None:
                report.keep(obj.key, "no confirmed backup of its content yet", **context)
                continue
            # Gone meanwhile (a partner collected it): recorded all the same.
            with contextlib.suppress(NotFound):
                await self.storage.delete(obj.key)
            async with db.transaction() as session:
                await session.execute(
                    update(BackupEntry)
                    .where(BackupEntry.id == entry_id)
                    .values(primary_deleted_at=now, primary_deleted_reason=why, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            report.primary_deleted.append(obj.key)
            log.info("deleted by retention", key=obj.key, days=days, **context)

    # ------------------------------------------------------------ backup store

    async def _backup(
        self, db: Database, tenant: Tenant, holds: Holds, now: datetime, report: Report
    ) -> None:
        days = tenant.retention_days_backup
        assert days is not None
        cutoff = now - timedelta(days=days)
        context = {"tenant": tenant.slug, "tenant_id": str(tenant.id), "store": "backup"}
        async with db.session() as session:
            rows = list(
                await session.scalars(
                    select(BackupEntry)
                    .where(
                        BackupEntry.tenant_id == tenant.id,
                        BackupEntry.status == "confirmed",
                        BackupEntry.created_at < cutoff,
                    )
                    .order_by(BackupEntry.created_at)
                )
            )
            newest = await _newest_confirmed(session, {r.key for r in rows})
        why = f"retention: older than the tenant's {days} days in the backup store"
        regions = self.storage.regions
        for row in rows:
            held = holds.reason(row.key)
            if held:
                report.keep(row.key, held, version_id=row.backup_version_id, **context)
                continue
            store = regions.backup(row.region) if regions.is_configured(row.region) else None
            if store is None:
                log.warning(
                    "backup not deleted: its region has no backup store",
                    key=row.key, region=row.region, **context,
                )  # fmt: skip
                continue
            overwritten = row.backup_version_id is None and newest.get(row.key) != row.id
            if not overwritten:
                # Without versions a key holds its newest content only: an older row's
                # bytes were replaced already, and deleting the key would lose the newer.
                await delete_backup(store, row.key, row.backup_version_id)
            async with db.transaction() as session:
                await session.execute(
                    update(BackupEntry)
                    .where(BackupEntry.id == row.id, BackupEntry.status == "confirmed")
                    .values(status="deleted", deleted_at=now, deleted_reason=why, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            report.backup_deleted.append((row.key, row.backup_version_id))
            log.info(
                "backup deleted by retention",
                key=row.key, version_id=row.backup_version_id, days=days, **context,
            )  # fmt: skip


async def _newest_confirmed(session: Any, keys: Iterable[str]) -> dict[str, Any]:
    """The id of the newest confirmed row of each key."""
    keys = list(keys)
    if not keys:
        return {}
    rows = (
        await session.execute(
            select(BackupEntry.key, BackupEntry.id)
            .where(BackupEntry.key.in_(keys), BackupEntry.status == "confirmed")
            .order_by(BackupEntry.created_at)
        )
    ).all()
    return {key: entry_id for key, entry_id in rows}


async def delete_backup(store: Storage, key: str, version_id: str | None) -> None:
    """Remove one backed-up version (on a versioned bucket, that version for good)."""
    if is_s3(store) and version_id:
        await asyncio.to_thread(_delete_s3_version, store, key, version_id)
        return
    with contextlib.suppress(NotFound):
        await store.delete(key)


def _delete_s3_version(store: Any, key: str, version_id: str) -> None:
    from botocore.exceptions import ClientError

    try:
        store.client.delete_object(Bucket=store.bucket, Key=store.full(key), VersionId=version_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "NoSuchVersion"):
            raise


# ---------------------------------------------------------------- scheduling


async def leased_run(
    db: Database,
    retention: Retention,
    owner: str,
    every: timedelta,
    now: datetime | None = None,
) -> Report | None:
    """Apply retention (ages as of `now`) if no replica did within `every`; None when it
    was not our turn."""
    return await once_per(db, PASS_ID, owner, every, lambda: retention.run(db, now))


async def retention_loop(runtime: Any, settings: BackupSettings) -> None:
    """The backup service's retention job: asks for its turn well within each interval."""
    retention = Retention(runtime.regional)
    every = timedelta(seconds=settings.retention_seconds)
    while True:
        try:
            await uninterrupted(leased_run(runtime.db, retention, runtime.instance, every))
        except Exception:
            runtime.log.exception("retention run failed")
        await asyncio.sleep(min(settings.retention_seconds, 60.0))
