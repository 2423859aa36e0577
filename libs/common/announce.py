"""Record a file that reached storage, then announce it on the bus.

The ledger row is committed before the publish; if the bus is down the row stays
unannounced and the poller's reconciliation publishes it later. The event id is
derived from the file id, so publishing twice is one event.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from courier.common.areas import received_key
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import ReceivedFile, Tenant
from courier.common.events import FileReceived
from courier.common.logging import get_logger
from courier.common.metrics import FILES_RECEIVED
from courier.common.storage import Storage

log = get_logger(__name__)


def event_for(row: ReceivedFile, tenant: Tenant) -> FileReceived:
    return FileReceived(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"courier:file:{row.id}"),
        file_id=row.id,
        tenant_id=tenant.id,
        tenant=tenant.slug,
        name=row.name,
        storage_key=row.storage_key,
        size=row.size,
        sha256=row.sha256,
        source=row.source,  # type: ignore[arg-type]
        account=row.account,
    )


async def record_file(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    name: str,
    inbound_key: str,
    *,
    source: str,
    account: str | None = None,
    sha256: str | None = None,
) -> ReceivedFile:
    """Keep an immutable copy of the inbound object and write its ledger row."""
    file_id = uuid.uuid4()
    key = received_key(tenant.slug, file_id, name)
    info = await storage.copy(inbound_key, key)
    if sha256 is None:
        digest = hashlib.sha256()
        async for chunk in storage.get(key):
            digest.update(chunk)
        sha256 = digest.hexdigest()
    row = ReceivedFile(
        id=file_id,
        tenant_id=tenant.id,
        name=name,
        storage_key=key,
        inbound_key=inbound_key,
        size=info.size,
        sha256=sha256,
        source=source,
        account=account,
    )
    async with db.transaction() as session:
        session.add(row)
    return row


async def announce(db: Database, bus: Bus, row: ReceivedFile, tenant: Tenant) -> bool:
    """Publish `courier.file.received`; False (and the row left unannounced) if the bus failed."""
    try:
        await bus.publish(event_for(row, tenant))
    except Exception as exc:
        log.warning(
            "file not announced; reconciliation will retry",
            tenant=tenant.slug,
            file_id=str(row.id),
            error=str(exc),
        )
        return False
    async with db.transaction() as session:
        stored = await session.get(ReceivedFile, row.id)
        if stored is not None and stored.announced_at is None:
            stored.announced_at = datetime.now(UTC)
    FILES_RECEIVED.labels(source=row.source).inc()
    log.info("file announced", tenant=tenant.slug, file_id=str(row.id), name=row.name)
    return True


async def announce_pending(db: Database, bus: Bus, limit: int = 500) -> int:
    """Publish every ledger row still unannounced (bus was down when it arrived)."""
    async with db.session() as session:
        rows = (
            await session.scalars(
                select(ReceivedFile)
                .where(ReceivedFile.announced_at.is_(None))
                .order_by(ReceivedFile.received_at)
                .limit(limit)
            )
        ).all()
    sent = 0
    for row in rows:
        if await announce(db, bus, row, row.tenant):
            sent += 1
    return sent
