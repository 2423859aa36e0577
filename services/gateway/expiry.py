"""Passwords nearing the end of their rotation period raise `password_expiring` alerts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.gateway.admin import policy_for

log = get_logger(__name__)


async def expiring_alerts(db: Database, now: datetime | None = None) -> list[AlertRaised]:
    """One alert per enabled account whose password expires within its tenant's warning days."""
    now = now or datetime.now(UTC)
    alerts = []
    async with db.session() as session:
        accounts = await session.scalars(
            select(SftpAccount).where(
                SftpAccount.enabled.is_(True),
                SftpAccount.password_expires_at.is_not(None),
                SftpAccount.password_expires_at > now,
            )
        )
        for account in accounts:
            policy = await policy_for(session, account.tenant_id)
            expires = account.password_expires_at
            assert expires is not None
            if expires - timedelta(days=policy.warn_days) > now:
                continue
            days = max(0, (expires - now).days)
            alerts.append(
                AlertRaised(
                    kind="password_expiring",
                    # One incident per account and expiry date, however often this runs.
                    cause_key=f"password_expiring:{account.username}:{expires.date()}",
                    tenant_id=account.tenant_id,
                    tenant=account.tenant.slug,
                    summary=(
                        f"SFTP password of {account.username} expires in {days} days "
                        f"({expires:%Y-%m-%d %H:%M} UTC)"
                    ),
                    details={
                        "username": account.username,
                        "expires_at": expires.isoformat(),
                        "days_left": days,
                    },
                )
            )
    return alerts


async def raise_expiry_alerts(db: Database, bus: Bus) -> int:
    alerts = await expiring_alerts(db)
    for alert in alerts:
        await bus.publish(alert)
        log.info("password expiring", tenant=alert.tenant, username=alert.details["username"])
    return len(alerts)


async def keep_checking(db: Database, bus: Bus, every: float) -> None:
    while True:
        try:
            await raise_expiry_alerts(db, bus)
        except Exception as exc:  # the next pass retries; an alert late beats a dead gateway
            log.warning("password expiry check failed", error=str(exc))
        await asyncio.sleep(every)
