"""The ledger of received files: a file that reached storage is recorded with its event.

The ledger row and its `courier.file.received` event commit in one transaction
(the event through the outbox), so a file is never recorded and left unannounced,
nor announced without its row. The event id derives from the file id, so a
repeated publish is one event.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.areas import received_key
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import ReceivedFile, Tenant
from courier.common.events import FileReceived
from courier.common.logging import get_logger
from courier.common.metrics import FILES_RECEIVED
from courier.common.outbox import stage
from courier.common.storage import Storage

log = get_logger(__name__)


def event_for(row: ReceivedFile, tenant: Tenant) -> FileReceived:
    return FileReceived(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"courier:file:{row.id}"),
        occurred_at=row.received_at,
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


async def keep_copy(
    storage: Storage,
    tenant: Tenant,
    name: str,
    inbound_key: str,
    *,
    source: str,
    account: str | None = None,
    sha256: str | None = None,
) -> ReceivedFile:
    """Copy the inbound object to its immutable key; the ledger row, not yet added."""
    file_id = uuid.uuid4()
    key = received_key(tenant.slug, file_id, name)
    info = await storage.copy(inbound_key, key)
    if sha256 is None:
        digest = hashlib.sha256()
        async for chunk in storage.get(key):
            digest.update(chunk)
        sha256 = digest.hexdigest()
    return ReceivedFile(
        id=file_id,
        tenant_id=tenant.id,
        name=name,
        storage_key=key,
        inbound_key=inbound_key,
        size=info.size,
        sha256=sha256,
        source=source,
        account=account,
        received_at=utcnow(),
    )


def add_received(session: AsyncSession, row: ReceivedFile, tenant: Tenant) -> None:
    """Add the row and stage its event in the caller's transaction."""
    session.add(row)
    stage(session, event_for(row, tenant))
    FILES_RECEIVED.labels(source=row.source).inc()
    log.info(
        "file received", tenant=tenant.slug, file_id=str(row.id), name=row.name, source=row.source
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
    """Keep the copy, then commit its row and event together.

    Returns once both are durable: the bus is not involved, so a partner's close
    never waits on it.
    """
    row = await keep_copy(
        storage, tenant, name, inbound_key, source=source, account=account, sha256=sha256
    )
    async with db.transaction() as session:
        add_received(session, row, tenant)
    return row
