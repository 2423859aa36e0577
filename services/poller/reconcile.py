"""Reconciliation answers one question: is a file in `/inbound` storage without a row?

Such a file was written to the bucket directly, or its uploader died between
storing it and recording it. It is recorded (row and event in one transaction,
like every received file). Objects younger than `min_age` are left to the
gateway, which records them itself a moment after they appear.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from courier.common.areas import area_key, is_temporary_name
from courier.common.db.engine import Database
from courier.common.db.models import ReceivedFile, Tenant
from courier.common.logging import get_logger
from courier.common.metrics import RECONCILED
from courier.common.received import record_file
from courier.common.regions import RegionViolation
from courier.common.storage import Storage

log = get_logger(__name__)


async def reconcile(
    db: Database, storage: Storage, min_age: timedelta = timedelta(minutes=2)
) -> int:
    """Record every unrecorded object; returns how many were found."""
    found = 0
    now = datetime.now(UTC)
    async with db.session() as session:
        tenants = (await session.scalars(select(Tenant))).all()
    for tenant in tenants:
        prefix = area_key(tenant.slug, "inbound")
        try:
            objects = await storage.list(prefix)
        except RegionViolation as exc:
            # One tenant's missing region configuration (already alerted by the write
            # path) must not hold up every tenant after it.
            log.warning(
                "tenant skipped: its region has no store", tenant=tenant.slug, reason=str(exc)
            )
            continue
        if not objects:
            continue
        async with db.session() as session:
            known = {
                (key, size)
                for key, size in (
                    await session.execute(
                        select(ReceivedFile.inbound_key, ReceivedFile.size).where(
                            ReceivedFile.tenant_id == tenant.id
                        )
                    )
                ).all()
            }
        for obj in objects:
            name = obj.key[len(prefix) + 1 :]
            if is_temporary_name(name) or (obj.key, obj.size) in known:
                continue
            if now - obj.modified < min_age:
                continue
            await record_file(db, storage, tenant, name, obj.key, source="reconcile")
            log.info("unrecorded file found", tenant=tenant.slug, name=name)
            RECONCILED.inc()
            found += 1
    return found
