"""A service none of whose instances has written a heartbeat lately is down: raise
`service_down`, and resolve it when a heartbeat comes back."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from courier.common.db.engine import Database
from courier.common.db.models_incidents import Incident, ServiceHeartbeat, SlaPolicy
from courier.monitor.incidents import Signal, record_signals, resolve_open


async def check_heartbeats(
    db: Database, now: datetime, silence: timedelta, policy: SlaPolicy
) -> tuple[list[str], list[str]]:
    """Returns the services found down and those found back up."""
    async with db.transaction() as session:
        last_seen = dict(
            (
                await session.execute(
                    select(
                        ServiceHeartbeat.service, func.max(ServiceHeartbeat.last_seen_at)
                    ).group_by(ServiceHeartbeat.service)
                )
            ).all()
        )
        down = {s: at for s, at in last_seen.items() if at < now - silence}
        signals = [
            Signal(
                kind="service_down",
                cause_key=service,
                event_key=f"heartbeat:{service}:{at.isoformat()}",
                summary=f"service {service} stopped: no heartbeat since {at:%Y-%m-%d %H:%M:%S} UTC",
                details={"service": service, "last_heartbeat": at.isoformat()},
            )
            for service, at in down.items()
        ]
        await record_signals(session, signals, now, policy)
        back = [
            i.cause_key
            for i in await session.scalars(
                select(Incident).where(Incident.open_key.like("service_down|%"))
            )
            if i.cause_key in last_seen and i.cause_key not in down
        ]
        await resolve_open(
            session,
            [f"service_down|{s}" for s in back],
            now,
            "monitor",
            "heartbeat resumed",
        )
    return sorted(down), back
