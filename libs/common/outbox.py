"""Events committed with the change they report; the relay is the only publisher.

A writer stages its events (and the commands it sends another service) in the
transaction that makes the change. When that transaction commits, the relay of
the same process is woken and publishes at once; if the bus is down, or the
process dies first, the rows stay and any service's relay publishes them later.
JetStream drops a repeat within its dedupe window (`Nats-Msg-Id` comes from the
event's content), and consumers are idempotent beyond it, so publishing twice is
harmless; losing an event (an unsent page, an unimported file) is not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

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
_STAGED = "courier_outbox_staged"

# Relays of this process, woken when a transaction that staged events commits.
_relays: set[asyncio.Event] = set()


def stage(session: AsyncSession, *events: Event) -> None:
    """Add events to the caller's transaction; they exist only if it commits."""
    for ev in events:
        session.add(
            OutboxEvent(subject=ev.subject, msg_id=ev.msg_id(), payload=ev.model_dump(mode="json"))
        )
    if events:
        session.sync_session.info[_STAGED] = True


@event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    if session.info.pop(_STAGED, False):
        for wake in _relays:
            wake.set()


@event.listens_for(Session, "after_rollback")
def _forget_staged(session: Session) -> None:
    session.info.pop(_STAGED, None)


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
    """Publish staged events for as long as the service runs.

    Woken by every commit of this process that staged events, so an event leaves
    right after its change; the `every` pass picks up what other processes (the
    CLI, a replica that died) left behind, and retries a refusing bus.
    """
    keep = timedelta(days=keep_days)
    last_prune = utcnow() - PRUNE_EVERY
    gauge_due = 0.0
    wake = asyncio.Event()
    _relays.add(wake)
    try:
        while not stopping.is_set():
            wake.clear()
            try:
                await uninterrupted(flush(db, publish))
                # Once per `every` at most: a pass per commit would add a transaction to
                # every imported file of a flood, for a gauge scraped every few seconds.
                if time.monotonic() >= gauge_due:
                    OUTBOX_OLDEST_SECONDS.set((await uninterrupted(pending(db)))[1])
                    gauge_due = time.monotonic() + every
                if utcnow() - last_prune >= PRUNE_EVERY:
                    await uninterrupted(prune(db, keep))
                    last_prune = utcnow()
            except Exception:
                log.exception("outbox relay pass failed")
            if wake.is_set():
                continue
            waits = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())}
            try:
                await asyncio.wait(waits, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
    finally:
        _relays.discard(wake)
