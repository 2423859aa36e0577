"""Passwords and SSH keys nearing their expiry raise `password_expiring` and
`ssh_key_expiring` alerts, which reach the partner's contacts through the monitor and
the notifier. The same pass reminds of OpenPGP keys (`courier.common.pgp_keys`), the
other credentials partners hold with us.

Each alert is staged in the outbox in the transaction that marks what it reminded of,
so a bus outage delays it but neither loses nor repeats it. A password gets one
reminder per expiry (a new password, a new reminder); a key one at each of 30, 7 and
1 days before it expires.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from courier.common.clock import Clock, SystemClock
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.db.models_gateway import AccountKey
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.common.outbox import stage
from courier.common.pgp_keys import raise_pgp_key_expiry_alerts
from courier.common.reminders import KEY_REMINDER_DAYS, days_left, plural, reminder_pending
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


def _key_alert(account: SftpAccount, key: AccountKey, due: int, now: datetime) -> AlertRaised:
    assert key.expires_at is not None
    days = days_left(key.expires_at, now)
    return AlertRaised(
        kind="ssh_key_expiring",
        # One incident (and so one e-mail to the partner) per key, expiry and reminder.
        cause_key=(
            f"ssh_key_expiring:{account.username}:{key.fingerprint}:{key.expires_at.date()}:{due}"
        ),
        tenant_id=account.tenant_id,
        tenant=account.tenant.slug,
        summary=(
            f"SSH key {key.fingerprint} of {account.username} expires in "
            f"{plural(days, 'day')} ({key.expires_at:%Y-%m-%d %H:%M} UTC): "
            "send the new public key to support before then"
        ),
        details={
            "username": account.username,
            "fingerprint": key.fingerprint,
            "comment": key.comment,
            "expires_at": key.expires_at.isoformat(),
            "days_left": days,
            "reminder_days": due,
        },
    )


async def raise_key_expiry_alerts(db: Database, now: datetime | None = None) -> list[AlertRaised]:
    """Stage an alert for each key of an enabled account that has come within 30, 7 or
    1 days of its expiry since its last reminder."""
    now = now or datetime.now(UTC)
    horizon = now + timedelta(days=max(KEY_REMINDER_DAYS))
    staged: list[AlertRaised] = []
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(AccountKey, SftpAccount)
                .join(SftpAccount, AccountKey.account_id == SftpAccount.id)
                .where(
                    SftpAccount.enabled.is_(True),
                    AccountKey.expires_at.is_not(None),
                    AccountKey.expires_at > now,
                    AccountKey.expires_at <= horizon,
                )
                .order_by(AccountKey.expires_at)
                # Replicas check at the same time: a key is one replica's to remind.
                .with_for_update(of=AccountKey, skip_locked=True)
            )
        ).all()
        for key, account in rows:
            assert key.expires_at is not None
            due = reminder_pending(key.expires_at, key.reminded_days, now)
            if due is None:
                continue
            alert = _key_alert(account, key, due, now)
            stage(session, alert)
            key.reminded_days = due
            staged.append(alert)
    for alert in staged:
        log.info(
            "ssh key expiring",
            tenant=alert.tenant,
            username=alert.details["username"],
            fingerprint=alert.details["fingerprint"],
            days=alert.details["reminder_days"],
        )
    return staged


async def keep_checking(db: Database, every: float, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    while True:
        for check in (raise_expiry_alerts, raise_key_expiry_alerts, raise_pgp_key_expiry_alerts):
            try:
                await uninterrupted(check(db, clock.now()))
            except Exception as exc:  # the next pass retries; late beats a dead gateway
                log.warning("expiry check failed", check=check.__name__, error=str(exc))
        await asyncio.sleep(every)
