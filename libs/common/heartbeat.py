"""Each service instance stamps a row every few seconds; the monitor pages when they stop."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import delete

from courier.common.clock import Clock
from courier.common.db.engine import Database
from courier.common.db.models_incidents import ServiceHeartbeat
from courier.common.logging import get_logger
from courier.common.tasks import uninterrupted

log = get_logger(__name__)


async def beat_once(db: Database, service: str, instance: str, clock: Clock) -> None:
    async with db.transaction() as session:
        row = await session.get(ServiceHeartbeat, instance)
        if row is None:
            session.add(
                ServiceHeartbeat(
                    instance=instance,
                    service=service,
                    started_at=clock.now(),
                    last_seen_at=clock.now(),
                )
            )
        else:
            row.last_seen_at = clock.now()


async def beat(db: Database, service: str, instance: str, clock: Clock, every: float) -> None:
    """Runs for the life of the service; a stop removes the row so a planned scale-down
    is not mistaken for a crash."""
    try:
        while True:
            try:
                await uninterrupted(beat_once(db, service, instance, clock))
            except Exception as exc:  # the database being away is the monitor's to notice
                log.warning("heartbeat not written", error=str(exc))
            await asyncio.sleep(every)
    finally:
        with contextlib.suppress(Exception):
            async with db.transaction() as session:
                await session.execute(
                    delete(ServiceHeartbeat).where(ServiceHeartbeat.instance == instance)
                )
