"""The reconciliation pass: every stored object ends up with a confirmed backup.

Events are the fast path; this pass is the guarantee. It lists each region's primary
store and backs up every object no ledger row covers (an event lost while the bus, the
database or this service was down), then retries failed copies whose backoff has run
out (the backup bucket was down). One replica runs it at a time (a lease on the
`backup_passes` row), at most once per `reconcile_seconds`.

An object is covered when a row for its key with its size was created after the object
was last written: the row was made from that very content. Anything else is hashed and
noted; the ledger's (key, sha256) uniqueness makes a second pass over it a no-op.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from courier.backup import ledger
from courier.backup.copier import Copier, Item
from courier.backup.passes import once_per
from courier.common.areas import is_temporary_name
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_backup import BackupEntry
from courier.common.logging import get_logger
from courier.common.metrics import BACKUP_BACKLOG, BACKUP_OLDEST_SECONDS
from courier.common.regions import tenant_of_key
from courier.common.uow import UnitOfWork

log = get_logger(__name__)

PASS_ID = "reconcile"
TENANTS_PREFIX = "tenants"


async def reconcile_region(uow: UnitOfWork, copier: Copier, region: str, now: datetime) -> int:
    """Back up every object of `region`'s primary store no row covers; returns how many."""
    primary = copier.regions.primary(region)
    objects = await primary.list(TENANTS_PREFIX)
    async with uow:
        tenants = {
            slug: (tenant_id, tenant_region)
            for slug, tenant_id, tenant_region in (
                await uow.session.execute(select(Tenant.slug, Tenant.id, Tenant.region))
            ).all()
        }
        covered: dict[tuple[str, int], datetime] = {}
        for key, size, created in (
            await uow.session.execute(
                select(BackupEntry.key, BackupEntry.size, BackupEntry.created_at).where(
                    BackupEntry.region == region
                )
            )
        ).all():
            covered[(key, size)] = max(created, covered.get((key, size), created))
    min_age = timedelta(seconds=copier.settings.reconcile_min_age_seconds)
    found = 0
    for obj in objects:
        slug = tenant_of_key(obj.key)
        if slug is None or is_temporary_name(obj.key):
            continue
        placed = tenants.get(slug)
        if placed is None or placed[1] != region:
            # Not this region's tenant (a shared store in development, or a leftover):
            # its own region's pass backs it up.
            continue
        created = covered.get((obj.key, obj.size))
        if created is not None and created >= obj.modified:
            continue
        if now - obj.modified < min_age:
            continue  # its event is probably on the way
        status = await copier.back_up(uow, Item(placed[0], region, obj.key, "reconcile"), now)
        log.info("object without a backup found", key=obj.key, region=region, status=status)
        found += 1
    return found


async def reconcile(uow: UnitOfWork, copier: Copier, now: datetime | None = None) -> int:
    """One whole pass over every region with a backup store, then the due retries."""
    now = now or utcnow()
    found = 0
    for region in copier.regions.names():
        if copier.regions.backup(region) is None:
            continue
        try:
            found += await reconcile_region(uow, copier, region, now)
        except Exception as exc:  # one region's store down must not hold back the others
            log.warning(
                "region not reconciled", region=region, error=f"{type(exc).__name__}: {exc}"
            )
    await copier.retry_due(uow, now)
    return found


async def measure(db: Database, regions: list[str], now: datetime | None = None) -> None:
    """Set the backlog gauges from the ledger (0 for a region with nothing waiting)."""
    now = now or utcnow()
    async with db.session() as session:
        rows = {b.region: b for b in await ledger.backlog(session)}
    for region in sorted({*regions, *rows}):
        b = rows.get(region)
        BACKUP_BACKLOG.labels(region=region).set(b.pending + b.failed if b else 0)
        oldest = (now - b.oldest).total_seconds() if b and b.oldest else 0.0
        BACKUP_OLDEST_SECONDS.labels(region=region).set(max(0.0, oldest))


async def leased_pass(
    db: Database, uow: UnitOfWork, copier: Copier, owner: str, every: timedelta
) -> int | None:
    """Run the pass if no replica ran it within `every`; None when it was not our turn."""
    return await once_per(db, PASS_ID, owner, every, lambda: reconcile(uow, copier))
