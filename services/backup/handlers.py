"""What each file event asks to be backed up.

- FileReceived: the immutable received copy (`tenants/<t>/received/<id>/<name>`), which
  is also the archived original the import audit serves.
- ImportCompleted / ImportFailed / FileRejected: the partner's result file
  (`Import.result_key`) and, again, the original it answers (a no-op when done).
- ExportDelivered: the built export and, for a pickup delivery, the copy the partner
  collects from `/outbound`.

Every handler is idempotent: the ledger is unique on (key, sha256), so a redelivered
event finds the version confirmed (or being copied) and copies nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from courier.backup.copier import Copier, Item
from courier.common.areas import area_key
from courier.common.db.models import Import, Tenant
from courier.common.db.models_exports import Export
from courier.common.events import (
    ExportDelivered,
    FileReceived,
    FileRejected,
    ImportCompleted,
    ImportFailed,
)
from courier.common.logging import get_logger
from courier.common.uow import UnitOfWork

log = get_logger(__name__)

PICKUP = "pickup:/outbound"


async def _region(uow: UnitOfWork, tenant_id: uuid.UUID) -> str | None:
    async with uow:
        return await uow.session.scalar(select(Tenant.region).where(Tenant.id == tenant_id))


async def _back_up_all(uow: UnitOfWork, copier: Copier, items: list[Item]) -> None:
    for item in items:
        await copier.back_up(uow, item)


async def on_file_received(event: FileReceived, uow: UnitOfWork, copier: Copier) -> None:
    region = await _region(uow, event.tenant_id)
    if region is None:
        log.warning("file of an unknown tenant", tenant_id=str(event.tenant_id))
        return
    item = Item(event.tenant_id, region, event.storage_key, "received", event.sha256, event.size)
    await copier.back_up(uow, item)


async def on_import_result(
    event: ImportCompleted | ImportFailed | FileRejected, uow: UnitOfWork, copier: Copier
) -> None:
    region = await _region(uow, event.tenant_id)
    if region is None:
        return
    async with uow:
        imp = await uow.session.scalar(select(Import).where(Import.file_id == event.file_id))
        found = None if imp is None else (imp.storage_key, imp.sha256, imp.size, imp.result_key)
    if found is None:
        return  # rejected before an import row existed: no result file, no archive
    original, sha256, size, result = found
    items = [Item(event.tenant_id, region, original, "received", sha256, size)]
    if result:
        # Its checksum is taken from the primary store: nothing else recorded one.
        items.append(Item(event.tenant_id, region, result, "result"))
    await _back_up_all(uow, copier, items)


def pickup_key(tenant: str, destination: str, name: str) -> str | None:
    """Where a pickup delivery put the file (`pickup:/outbound[/dir]`); None for a push."""
    if destination != PICKUP and not destination.startswith(PICKUP + "/"):
        return None
    directory = destination[len(PICKUP) :].strip("/")
    return area_key(tenant, "outbound", f"{directory}/{name}" if directory else name)


async def on_export_delivered(event: ExportDelivered, uow: UnitOfWork, copier: Copier) -> None:
    region = await _region(uow, event.tenant_id)
    if region is None:
        return
    async with uow:
        export = await uow.session.get(Export, event.export_id)
        found = None if export is None else (export.storage_key, export.sha256, export.size)
    if found is None or found[0] is None:
        return
    build, sha256, size = found
    items = [Item(event.tenant_id, region, build, "export", sha256, size)]
    if (pickup := pickup_key(event.tenant, event.destination, event.name)) is not None:
        items.append(Item(event.tenant_id, region, pickup, "pickup", sha256, size))
    await _back_up_all(uow, copier, items)
