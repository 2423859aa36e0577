"""Signals in, incidents out: a new cause opens an incident (with its SLA timers and an
"opened" notice for the notifier); the same cause while it is open only counts again.

Every notice is written through `add_notices`, which stages the `NoticesRaised` event
announcing it in the same transaction: the notifier hears of exactly the notices that
committed, through the outbox, and never looks for them itself.

Works in batches because a busy minute (thousands of windows closing together) must page
within seconds: one query finds the open incidents of every cause in the batch, one finds
the events already counted, and the inserts go out together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.engine import Database, upsert_insert
from courier.common.db.models import Feed
from courier.common.db.models_incidents import (
    Incident,
    IncidentOccurrence,
    Notice,
    SlaPolicy,
    SlaTimer,
    incident_class,
    incident_payload,
    sla_timers_for,
)
from courier.common.events import NoticesRaised
from courier.common.logging import get_logger
from courier.common.metrics import INCIDENTS_OPEN, INCIDENTS_OPENED
from courier.common.outbox import stage

log = get_logger(__name__)


@dataclass
class Signal:
    """One observation that something is wrong, before it is an incident."""

    kind: str
    cause_key: str
    # Unique per observation, so a redelivered event is not counted twice.
    event_key: str
    summary: str
    tenant_id: uuid.UUID | None = None
    tenant: str | None = None
    feed: str | None = None
    file_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    # Page only from this time on (an export may still be delivered before its deadline).
    page_at: datetime | None = None
    incident_class: str | None = None
    # The id of the incident this signal opens, if it opens one (default: a new uuid).
    incident_id: uuid.UUID | None = None

    @property
    def open_key(self) -> str:
        return f"{self.kind}|{self.cause_key}"


def notice(incident: Incident, reason: str, now: datetime, **extra: Any) -> dict[str, Any]:
    """A notice row about `incident`, for `add_notices`."""
    return {
        "incident_id": incident.id,
        "reason": reason,
        "payload": {**incident.payload(), **extra},
        "created_at": now,
    }


async def add_notices(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert notices and stage the events that hand them to the notifier; their ids."""
    if not rows:
        return []
    ids = list(
        await session.scalars(insert(Notice.__table__).returning(Notice.__table__.c.id), rows)
    )
    stage(session, *NoticesRaised.batches(ids))
    return ids


@dataclass(frozen=True)
class Opened:
    id: uuid.UUID
    open_key: str
    kind: str


async def record_signals(
    session: AsyncSession, signals: Sequence[Signal], now: datetime, policy: SlaPolicy
) -> list[Opened]:
    """Fold each signal into its open incident or open one; returns incidents opened.

    New rows go out as Core bulk INSERTs (no ORM objects, no ORM bulk bookkeeping): a
    busy minute opens thousands.
    """
    if not signals:
        return []
    counted = set(
        await session.scalars(
            select(IncidentOccurrence.event_key).where(
                IncidentOccurrence.event_key.in_({s.event_key for s in signals})
            )
        )
    )
    existing: dict[str, Incident] = {
        i.open_key: i
        for i in await session.scalars(
            select(Incident).where(Incident.open_key.in_({s.open_key for s in signals}))
        )
        if i.open_key
    }
    new: dict[str, dict[str, Any]] = {}
    occurrences: list[dict[str, Any]] = []
    for sig in signals:
        if sig.event_key in counted:
            continue
        counted.add(sig.event_key)
        if (incident := existing.get(sig.open_key)) is not None:
            incident.occurrences += 1
            incident.last_seen_at = now
            incident_id = incident.id
        elif (row := new.get(sig.open_key)) is not None:
            row["occurrences"] += 1
            incident_id = row["id"]
        else:
            row = _row(sig, now)
            new[sig.open_key] = row
            incident_id = row["id"]
        occurrences.append(
            {"incident_id": incident_id, "event_key": sig.event_key, "seen_at": now,
             "summary": sig.summary}
        )  # fmt: skip
    rows = await _open(session, list(new.values()), occurrences, now)
    if rows:
        await session.execute(
            insert(SlaTimer.__table__),
            [
                {"incident_id": r["id"], "kind": kind, "due_at": due, "warn_at": warn}
                for r in rows
                for kind, due, warn in sla_timers_for(r["incident_class"], now, policy)
            ],
        )
        await add_notices(
            session,
            [
                {"incident_id": r["id"], "reason": "opened", "created_at": now,
                 "payload": incident_payload(r)}
                for r in rows
                if r["paged_at"] is not None
            ],
        )  # fmt: skip
        log.info("incidents opened", count=len(rows), kinds=sorted({r["kind"] for r in rows}))
        for r in rows:
            INCIDENTS_OPENED.labels(r["kind"]).inc()
    if occurrences:
        await session.execute(insert(IncidentOccurrence.__table__), occurrences)
    return [Opened(r["id"], r["open_key"], r["kind"]) for r in rows]


async def _open(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    occurrences: list[dict[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """Insert new incidents; returns those inserted. A cause another transaction opened
    meanwhile (a concurrent batch, another replica) folds into that incident instead:
    the unique `open_key` makes the insert wait for it, then skip."""
    if not rows:
        return []
    # One order for every transaction: two batches that share causes then wait on each
    # other's first shared key instead of each holding a key the other needs (deadlock).
    rows = sorted(rows, key=lambda r: r["open_key"])
    table = Incident.__table__
    inserted = set(
        await session.scalars(
            upsert_insert(session, table)
            .on_conflict_do_nothing(index_elements=[table.c.open_key])
            .returning(table.c.id),
            rows,
        )
    )
    lost = {r["open_key"]: r for r in rows if r["id"] not in inserted}
    if lost:
        winners = dict(
            (
                await session.execute(
                    select(Incident.open_key, Incident.id).where(Incident.open_key.in_(lost))
                )
            ).all()
        )
        moved = {lost[k]["id"]: winners[k] for k in lost if k in winners}
        for occurrence in occurrences:
            occurrence["incident_id"] = moved.get(
                occurrence["incident_id"], occurrence["incident_id"]
            )
        for key, winner in sorted(winners.items()):
            await session.execute(
                update(Incident)
                .where(Incident.id == winner)
                .values(
                    occurrences=Incident.occurrences + lost[key]["occurrences"], last_seen_at=now
                )
                .execution_options(synchronize_session=False)
            )
    return [r for r in rows if r["id"] in inserted]


def _row(sig: Signal, now: datetime) -> dict[str, Any]:
    page_at = sig.page_at if sig.page_at and sig.page_at > now else None
    return {
        "id": sig.incident_id or uuid.uuid4(),
        "kind": sig.kind,
        "incident_class": sig.incident_class or incident_class(sig.kind),
        "cause_key": sig.cause_key,
        "open_key": sig.open_key,
        "tenant_id": sig.tenant_id,
        "tenant": sig.tenant,
        "feed": sig.feed,
        "file_name": sig.file_name,
        "summary": sig.summary,
        "details": sig.details,
        "contacts": sig.contacts,
        "state": "open",
        "occurrences": 1,
        "first_seen_at": now,
        "last_seen_at": now,
        "page_at": page_at,
        "paged_at": None if page_at else now,
        "created_at": now,
    }


async def resolve_open(
    session: AsyncSession, open_keys: Sequence[str], now: datetime, by: str, note: str
) -> list[Incident]:
    """Resolve whatever is open under these causes (a late file, a heartbeat back)."""
    incidents = list(
        await session.scalars(select(Incident).where(Incident.open_key.in_(set(open_keys))))
    )
    notices = []
    for incident in incidents:
        await session.refresh(incident, ["notes", "timers"])
        if incident.resolve(now, by, note):
            if incident.incident_class == "partner" and incident.paged_at is not None:
                notices.append(notice(incident, "resolved", now, note=note))
            log.info("incident resolved", incident_id=str(incident.id), note=note)
    await add_notices(session, notices)
    return incidents


async def release_deferred_pages(session: AsyncSession, now: datetime) -> int:
    """Page for incidents whose grace period ran out while still unresolved."""
    due = list(
        await session.scalars(
            select(Incident)
            .where(Incident.page_at.is_not(None), Incident.page_at <= now)
            .where(Incident.paged_at.is_(None), Incident.state != "resolved")
            .with_for_update(skip_locked=True)
        )
    )
    for incident in due:
        incident.paged_at = now
    await add_notices(session, [notice(incident, "opened", now) for incident in due])
    return len(due)


async def tenant_contacts(
    session: AsyncSession, tenant_id: uuid.UUID, feed: str | None = None
) -> list[dict[str, Any]]:
    """A feed's contacts, or every contact of the tenant's feeds when the feed is unknown."""
    query = select(Feed).where(Feed.tenant_id == tenant_id)
    if feed:
        query = query.where(Feed.name == feed)
    seen: dict[str, dict[str, Any]] = {}
    for f in await session.scalars(query.order_by(Feed.name)):
        for contact in (f.spec or {}).get("contacts") or []:
            seen.setdefault(contact.get("email") or contact.get("phone") or "", contact)
    return list(seen.values())


async def publish_open_counts(db: Database) -> dict[tuple[str, str], int]:
    """Set the open-incidents gauge from the table (every replica reports the same)."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Incident.incident_class, Incident.state, func.count())
                .where(Incident.state != "resolved")
                .group_by(Incident.incident_class, Incident.state)
            )
        ).all()
    counts = {(c, st): n for c, st, n in rows}
    for cls in ("platform", "partner"):
        for state in ("open", "acknowledged"):
            INCIDENTS_OPEN.labels(cls, state).set(counts.get((cls, state), 0))
    return counts
