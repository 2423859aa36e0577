"""Passwords nearing the end of their rotation period raise `password_expiring` alerts.

One alert per account and expiry: it is staged in the outbox in the transaction that
marks the account reminded of that expiry, so a bus outage delays the alert but
neither loses nor repeats it. A new password (a new expiry) gets a reminder of its own.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.common.outbox import stage
from courier.common.tasks import uninterrupted
from courier.gateway.admin import policy_for

log = get_logger(__name__)


def _alert(account: SftpAccount, expires: datetime, now: datetime) -> AlertRaised:
    days = max(0, (expires - now).days)
    return AlertRaised(
        kind="password_expiring",
        # One incident per account and expiry date.
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


async def raise_expiry_alerts(db: Database, now: datetime | None = None) -> list[AlertRaised]:
    """Stage an alert for each enabled account whose password expires within its
    tenant's warning days and that was not reminded of this expiry yet."""
    now = now or datetime.now(UTC)
    staged: list[AlertRaised] = []
    async with db.transaction() as session:
        accounts = list(
            await session.scalars(
                select(SftpAccount)
                .where(
                    SftpAccount.enabled.is_(True),
                    SftpAccount.password_expires_at.is_not(None),
                    SftpAccount.password_expires_at > now,
                )
                # Replicas check at the same time: an account is one replica's to remind.
                .with_for_update(of=SftpAccount, skip_locked=True)
            )
        )
        for account in accounts:
            expires = account.password_expires_at
            assert expires is not None
            if account.password_reminded_for == expires:
                continue
            policy = await policy_for(session, account.tenant_id)
            if expires - timedelta(days=policy.warn_days) > now:
                continue
            alert = _alert(account, expires, now)
            stage(session, alert)
            account.password_reminded_for = expires
            staged.append(alert)
    for alert in staged:
        log.info("password expiring", tenant=alert.tenant, username=alert.details["username"])
    return staged


async def keep_checking(db: Database, every: float) -> None:
    while True:
        try:
            await uninterrupted(raise_expiry_alerts(db))
        except Exception as exc:  # the next pass retries; an alert late beats a dead gateway
            log.warning("password expiry check failed", error=str(exc))
        await asyncio.sleep(every)
