"""Events committed with the change they report, then published.

A writer stages its events in the transaction that makes the change, and flushes
after the commit. If the bus is down, or the process dies in between, the events
stay in the table and every service's relay publishes them later. JetStream drops
a repeat within its dedupe window (`Nats-Msg-Id` comes from the event's content),
and consumers are idempotent beyond it, so publishing twice is harmless; losing
an event (an unsent page) is not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import EVENT_TYPES, Event
from courier.common.logging import get_logger
from courier.common.metrics import OUTBOX_FAILURES, OUTBOX_OLDEST_SECONDS, OUTBOX_PUBLISHED
from courier.common.tasks import uninterrupted

log = get_logger(__name__)

Publish = Callable[[Event], Awaitable[Any]]
BATCH = 200
PRUNE_EVERY = timedelta(hours=1)


def stage(session: AsyncSession, *events: Event) -> None:
    """Add events to the caller's transaction; they exist only if it commits."""
    for event in events:
        session.add(
            OutboxEvent(
                subject=event.subject,
                msg_id=event.msg_id(),
                payload=event.model_dump(mode="json"),
            )
        )


def _event(row: OutboxEvent) -> Event:
    return EVENT_TYPES[row.subject].model_validate(row.payload)


async def flush(db: Database, publish: Publish, *, limit: int = BATCH) -> int:
    """Publish waiting events in the order they were staged; stop at the first refusal.

    Rows are locked while they are published (`SKIP LOCKED` on PostgreSQL), so two
    relays do not both send the same batch.
    """
    sent, after = 0, 0
    while True:
        async with db.transaction() as session:
            rows = list(
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None), OutboxEvent.id > after)
                    .order_by(OutboxEvent.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                after = row.id
                try:
                    event = _event(row)
                except Exception as exc:
                    # A row this code cannot read stays visible (and ages the oldest-
                    # pending gauge) but never holds up the events behind it.
                    row.attempts += 1
                    row.last_error = f"unreadable: {exc}"[:2000]
                    log.error("outbox event unreadable", subject=row.subject, outbox_id=row.id)
                    continue
                try:
                    await publish(event)
                except Exception as exc:
                    row.attempts += 1
                    row.last_error = (str(exc) or type(exc).__name__)[:2000]
                    OUTBOX_FAILURES.inc()
                    log.warning(
                        "outbox publish failed; kept for the relay",
                        subject=row.subject,
                        outbox_id=row.id,
                        attempts=row.attempts,
                        error=row.last_error,
                    )
                    return sent
                row.published_at = utcnow()
                OUTBOX_PUBLISHED.labels(row.subject).inc()
                sent += 1
        if len(rows) < limit:
            return sent


async def flush_quietly(db: Database, publish: Publish) -> int:
    """`flush` for a writer right after its commit: a failure is the relay's to retry."""
    try:
        return await flush(db, publish)
    except Exception:
        log.exception("outbox flush failed; the relay will retry")
        return 0


async def publish_or_keep(db: Database, publish: Publish, event: Event) -> bool:
    """Publish now; if the bus refuses, keep the event for the relay. True if sent now.

    For events that answer no database change of their own (a download seen by the
    gateway): no outbox row in the common case, none lost when the bus is down.
    """
    try:
        await publish(event)
        return True
    except Exception as exc:
        log.warning("publish failed; kept for the relay", subject=event.subject, error=str(exc))
        async with db.transaction() as session:
            stage(session, event)
        return False


async def pending(db: Database) -> tuple[int, float]:
    """How many events wait, and the age in seconds of the oldest."""
    async with db.session() as session:
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.published_at.is_(None)
                )
            )
        ).one()
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return count, max(0.0, age)


async def prune(db: Database, keep: timedelta) -> int:
    """Forget published events older than `keep` (kept that long for support)."""
    async with db.transaction() as session:
        result = await session.execute(
            delete(OutboxEvent).where(
                OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < utcnow() - keep
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def relay(
    db: Database, publish: Publish, stopping: asyncio.Event, *, every: float, keep_days: int
) -> None:
    """Publish what writers could not, for as long as the service runs."""
    keep = timedelta(days=keep_days)
    last_prune = utcnow() - PRUNE_EVERY
    while not stopping.is_set():
        try:
            await uninterrupted(flush(db, publish))
            OUTBOX_OLDEST_SECONDS.set((await uninterrupted(pending(db)))[1])
            if utcnow() - last_prune >= PRUNE_EVERY:
                await uninterrupted(prune(db, keep))
                last_prune = utcnow()
        except Exception:
            log.exception("outbox relay pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every)
