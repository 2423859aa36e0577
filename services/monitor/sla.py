"""SLA timers: a warning some time before the deadline and a breach at it, each once.

The timers are rows, so a restarted monitor carries on where it stopped; setting
`warned_at` / `breached_at` from NULL is the claim, so with two replicas the one whose
UPDATE matched sends the notice and the other sees nothing left to do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Incident, SlaTimer
from courier.common.logging import get_logger
from courier.common.metrics import SLA_TIMERS_FIRED
from courier.monitor.incidents import add_notices, notice

log = get_logger(__name__)


def local_time(at: datetime, zone: str | None) -> str:
    """`at` as the tenant reads it, with the zone's name (platform incidents: UTC)."""
    tz = ZoneInfo(zone or "UTC")
    return f"{at.astimezone(tz):%Y-%m-%d %H:%M} {tz.key}"


WHAT = {
    "resolve": "resolve the incident",
    "contact": "contact the customer or vendor",
    "respond": "answer the partner's response",
}


async def _claim(session: AsyncSession, column: str, due_column: str, now: datetime) -> list[int]:
    col, due = getattr(SlaTimer, column), getattr(SlaTimer, due_column)
    return list(
        await session.scalars(
            update(SlaTimer)
            .where(SlaTimer.stopped_at.is_(None), col.is_(None), due <= now)
            .values({column: now})
            .returning(SlaTimer.id)
            .execution_options(synchronize_session=False)
        )
    )


async def fire_due_timers(db: Database, now: datetime) -> list[tuple[str, str]]:
    """Warn and breach every timer whose moment has come; returns (stage, incident id)."""
    fired: list[tuple[str, str]] = []
    notices: list[dict[str, Any]] = []
    async with db.transaction() as session:
        for stage, column, due_column in (
            ("sla_breach", "breached_at", "due_at"),
            ("sla_warning", "warned_at", "warn_at"),
        ):
            ids = await _claim(session, column, due_column, now)
            if not ids:
                continue
            if stage == "sla_breach":
                # A breach makes the warning moot; never send a warning after it.
                await session.execute(
                    update(SlaTimer)
                    .where(SlaTimer.id.in_(ids), SlaTimer.warned_at.is_(None))
                    .values(warned_at=now)
                    .execution_options(synchronize_session=False)
                )
            rows = (
                await session.execute(
                    select(SlaTimer, Incident, Tenant.timezone)
                    .join(Incident, Incident.id == SlaTimer.incident_id)
                    .outerjoin(Tenant, Tenant.id == Incident.tenant_id)
                    .where(SlaTimer.id.in_(ids))
                )
            ).all()
            for timer, incident, zone in rows:
                notices.append(
                    notice(
                        incident,
                        stage,
                        now,
                        sla={
                            "timer": timer.kind,
                            "what": WHAT.get(timer.kind, timer.kind),
                            "due_at": timer.due_at.isoformat(),
                            # On the customer's clock: what support says to them.
                            "due_local": local_time(timer.due_at, zone),
                        },
                    )
                )
                fired.append((stage, str(incident.id)))
                SLA_TIMERS_FIRED.labels(stage.removeprefix("sla_")).inc()
                log.warning(
                    "sla timer fired",
                    stage=stage,
                    timer=timer.kind,
                    incident_id=str(incident.id),
                    tenant=incident.tenant,
                )
        await add_notices(session, notices)
    return fired
