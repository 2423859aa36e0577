"""Events from the bus turned into signals: rejected files, failed imports, alerts that
other services raise, messages that ran out of deliveries, and a delivered export that
settles its own alert."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Import
from courier.common.db.models_incidents import Incident, SlaPolicy
from courier.common.events import AlertRaised, ExportDelivered, FileRejected, ImportFailed
from courier.monitor.incidents import Signal, record_signals, resolve_open, tenant_contacts


def _columns(reason: str, details: dict[str, Any]) -> str:
    """A wrong header names the columns it lacks; add the columns the feed expects."""
    expected = details.get("expected")
    if expected and "expected columns" not in reason:
        return f" (expected columns: {', '.join(map(str, expected))})"
    return ""


async def on_file_rejected(
    db: Database, event: FileRejected, now: datetime, policy: SlaPolicy
) -> None:
    """A rejected live file is an incident. A rejected test file is the partner's test
    doing its job: their result file tells them, and nobody is paged."""
    if event.test:
        return
    async with db.transaction() as session:
        feed = None
        if event.import_id is not None:
            imp = await session.get(Import, event.import_id)
            feed = imp.feed.name if imp is not None and imp.feed is not None else None
        sig = Signal(
            kind="file_rejected",
            cause_key=f"{event.tenant_id}|{feed or '-'}|{event.reason}",
            event_key=f"rejected:{event.file_id}",
            summary=(
                f"file {event.name} rejected: {event.reason}{_columns(event.reason, event.details)}"
            ),
            tenant_id=event.tenant_id,
            tenant=event.tenant,
            feed=feed,
            file_name=event.name,
            details={"reason": event.reason, **event.details, "file_id": str(event.file_id)},
            contacts=await tenant_contacts(session, event.tenant_id, feed),
        )
        await record_signals(session, [sig], now, policy)


async def on_import_failed(
    db: Database, event: ImportFailed, now: datetime, policy: SlaPolicy
) -> None:
    async with db.transaction() as session:
        if event.import_id is not None:
            imp = await session.get(Import, event.import_id)
            # A rejected file is the partner's (file_rejected says so); only our own
            # failures to process a file are import_failed.
            if imp is not None and imp.status == "rejected":
                return
        sig = Signal(
            kind="import_failed",
            cause_key=f"{event.tenant_id}|{event.feed or '-'}|{event.reason}",
            event_key=f"import_failed:{event.file_id}:{event.import_id}",
            summary=f"import of {event.name} failed: {event.reason}",
            tenant_id=event.tenant_id,
            tenant=event.tenant,
            feed=event.feed,
            file_name=event.name,
            details={"reason": event.reason, **event.details, "file_id": str(event.file_id)},
            # Their file was not applied: the feed's contacts are told it is in hand.
            contacts=await tenant_contacts(session, event.tenant_id, event.feed),
        )
        await record_signals(session, [sig], now, policy)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else None


async def on_alert(db: Database, event: AlertRaised, now: datetime, policy: SlaPolicy) -> None:
    """Any service's alert. `details.deadline` (ISO time) holds the page until then:
    an export that failed one push may still be delivered within its window."""
    details = dict(event.details)
    async with db.transaction() as session:
        contacts = details.pop("contacts", None)
        if contacts is None and event.tenant_id is not None:
            contacts = await tenant_contacts(session, event.tenant_id, details.get("feed"))
        sig = Signal(
            kind=event.kind,
            cause_key=f"{event.tenant_id or '-'}|{event.cause_key}",
            event_key=f"alert:{event.event_id}",
            summary=event.summary,
            tenant_id=event.tenant_id,
            tenant=event.tenant,
            feed=details.get("feed") or details.get("spec"),
            file_name=details.get("file") or details.get("name"),
            details=details,
            contacts=contacts or [],
            page_at=_when(details.get("deadline")),
            incident_class=details.get("class")
            if details.get("class") in ("platform", "partner")
            else None,
        )
        await record_signals(session, [sig], now, policy)


async def on_export_delivered(db: Database, event: ExportDelivered, now: datetime) -> int:
    """A delivery settles the open `export_undeliverable` incident of the same export."""
    async with db.transaction() as session:
        incidents = await session.scalars(
            select(Incident).where(
                Incident.kind == "export_undeliverable",
                Incident.tenant_id == event.tenant_id,
                Incident.open_key.is_not(None),
            )
        )
        keys = [
            i.open_key
            for i in incidents
            if i.open_key
            and (
                i.details.get("export_id") == str(event.export_id)
                or (i.details.get("spec") == event.spec and "export_id" not in i.details)
            )
        ]
        note = f"export {event.name} delivered to {event.destination}"
        resolved = await resolve_open(session, keys, now, "monitor", note)
    return len(resolved)


async def on_max_deliveries(
    db: Database, advisory: dict[str, Any], message: dict[str, Any] | None, now: datetime,
    policy: SlaPolicy,
) -> None:  # fmt: skip
    stream, consumer = advisory.get("stream", "?"), advisory.get("consumer", "?")
    seq = advisory.get("stream_seq")
    subject = (message or {}).get("subject") or "unknown subject"
    sig = Signal(
        kind="max_deliveries",
        cause_key=f"{stream}|{consumer}",
        event_key=f"advisory:{advisory.get('id') or f'{stream}:{consumer}:{seq}'}",
        summary=(
            f"consumer {consumer} gave up on message {seq} of {stream} ({subject}) "
            f"after {advisory.get('deliveries', '?')} deliveries"
        ),
        details={
            "stream": stream,
            "consumer": consumer,
            "stream_seq": seq,
            "deliveries": advisory.get("deliveries"),
            "subject": subject,
        },
    )
    async with db.transaction() as session:
        await record_signals(session, [sig], now, policy)
