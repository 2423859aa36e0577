"""Exports placed in a pickup area: watched until the partner downloads them.

A file in `/outbound` helps nobody until the partner collects it. The exporter says
where it put the file and by when it should be collected (`courier.export.delivered`
with `path` and `collect_by`); the gateway says when a partner read a whole file
(`courier.file.downloaded`). Past the deadline with no download, `export_not_collected`
opens a partner incident (the customer is contacted); a download after that resolves
it with a note.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from courier.common.db.engine import Database, upsert_insert
from courier.common.db.models_exports import ExportSpec
from courier.common.db.models_incidents import PickupWatch, SlaPolicy
from courier.common.events import ExportDelivered, FileDownloaded
from courier.common.logging import get_logger
from courier.monitor.incidents import Signal, record_signals, resolve_open, tenant_contacts

log = get_logger(__name__)
KIND = "export_not_collected"


def _cause(export_id: Any, path: str) -> str:
    return f"pickup:{export_id}:{path}"


async def watch_delivery(db: Database, event: ExportDelivered, now: datetime) -> bool:
    """Start watching a pickup delivery for its download.

    The same event delivered twice changes nothing; a new delivery round of the export
    (`courier exports redeliver`, a later deadline) starts the watch again.
    """
    if not event.path or event.collect_by is None:
        return False
    row = {
        "export_id": event.export_id,
        "path": event.path,
        "tenant_id": event.tenant_id,
        "tenant": event.tenant,
        "spec": event.spec,
        "file_name": event.name,
        "placed_at": now,
        "collect_by": event.collect_by,
    }
    table = PickupWatch.__table__
    async with db.transaction() as session:
        stmt = upsert_insert(session, table).values(row)
        result = await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.export_id, table.c.path],
                set_={
                    "placed_at": stmt.excluded.placed_at,
                    "collect_by": stmt.excluded.collect_by,
                    "collected_at": None,
                    "collected_by": None,
                    "alerted_at": None,
                },
                where=table.c.collect_by < stmt.excluded.collect_by,
            )
        )
    return bool(getattr(result, "rowcount", 0))


async def on_downloaded(db: Database, event: FileDownloaded, now: datetime) -> int:
    """The partner collected a file: close its watch, and its incident if one was raised."""
    async with db.transaction() as session:
        watches = list(
            await session.scalars(
                select(PickupWatch).where(
                    PickupWatch.tenant_id == event.tenant_id,
                    PickupWatch.path == event.path,
                    PickupWatch.collected_at.is_(None),
                )
            )
        )
        for watch in watches:
            watch.collected_at, watch.collected_by = now, event.username
            log.info(
                "export collected",
                tenant=watch.tenant,
                export_id=str(watch.export_id),
                path=watch.path,
                by=event.username,
            )
            if watch.alerted_at is not None:
                note = (
                    f"{watch.path} downloaded by {event.username} at {now:%Y-%m-%d %H:%M} UTC, "
                    f"after the deadline {watch.collect_by:%Y-%m-%d %H:%M} UTC"
                )
                await resolve_open(
                    session, [f"{KIND}|{watch.tenant_id}|{_cause(watch.export_id, watch.path)}"],
                    now, "monitor", note,
                )  # fmt: skip
    return len(watches)


async def check_collections(db: Database, now: datetime, policy: SlaPolicy) -> int:
    """Raise `export_not_collected` for every watch past its deadline; each once."""
    async with db.transaction() as session:
        due = list(
            await session.scalars(
                update(PickupWatch)
                .where(
                    PickupWatch.collect_by <= now,
                    PickupWatch.collected_at.is_(None),
                    PickupWatch.alerted_at.is_(None),
                )
                .values(alerted_at=now)
                .returning(PickupWatch)
                .execution_options(synchronize_session=False)
            )
        )
        if not due:
            return 0
        signals = []
        for watch in due:
            contacts = await _contacts(session, watch)
            signals.append(
                Signal(
                    kind=KIND,
                    cause_key=f"{watch.tenant_id}|{_cause(watch.export_id, watch.path)}",
                    event_key=f"pickup:{watch.export_id}:{watch.path}:{watch.collect_by}",
                    summary=(
                        f"export {watch.file_name} ({watch.spec}) was not downloaded from "
                        f"{watch.path} by {watch.collect_by:%Y-%m-%d %H:%M} UTC"
                    ),
                    tenant_id=watch.tenant_id,
                    tenant=watch.tenant,
                    feed=watch.spec,
                    file_name=watch.file_name,
                    details={
                        "export_id": str(watch.export_id),
                        "spec": watch.spec,
                        "path": watch.path,
                        "placed_at": watch.placed_at.isoformat(),
                        "collect_by": watch.collect_by.isoformat(),
                    },
                    contacts=contacts,
                )
            )
        await record_signals(session, signals, now, policy)
    log.warning("exports not collected", count=len(signals))
    return len(signals)


async def _contacts(session: Any, watch: PickupWatch) -> list[dict[str, Any]]:
    """The export spec's contacts, else the tenant's feed contacts."""
    row = await session.scalar(
        select(ExportSpec).where(
            ExportSpec.tenant_id == watch.tenant_id, ExportSpec.name == watch.spec
        )
    )
    listed = list((row.spec or {}).get("contacts") or []) if row is not None else []
    return listed or await tenant_contacts(session, watch.tenant_id)
