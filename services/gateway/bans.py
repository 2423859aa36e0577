"""Brute-force defence and the pre-login address check, shared by every connection.

Failures are scored from the session audit itself (login failures per source address
within a window), so every replica sees the same count; bans live in the database and
each replica keeps a copy it can consult synchronously when a TCP connection arrives.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from courier.common import console_audit
from courier.common.db.engine import Database
from courier.common.db.models_gateway import Ban, SessionEvent
from courier.common.logging import get_logger
from courier.common.settings import Settings
from courier.common.tasks import uninterrupted
from courier.gateway.accounts import Network, address_in, allowed_networks, legacy_networks
from courier.gateway.metrics import SFTP_BANS

log = get_logger(__name__)


# The console audit's action for an operator's lifting of a ban.
LIFTED = "gateway_ban.lift"


def _now() -> datetime:
    return datetime.now(UTC)


class Guard:
    """Answers "may this address even start SSH?" without touching the database."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.allowed: list[Network] = []
        # Where accounts with legacy algorithms on may connect from.
        self.legacy: list[Network] = []
        self.banned: dict[str, datetime] = {}

    def admits(self, address: str) -> bool:
        until = self.banned.get(address)
        if until is not None and until > _now():
            return False
        return address_in(address, self.allowed)

    def admits_now(self, address: str) -> bool:
        """Not banned as of the last refresh or a ban decided here since (checked at login)."""
        until = self.banned.get(address)
        return until is None or until <= _now()

    def legacy_for(self, address: str) -> bool:
        return address_in(address, self.legacy)

    async def refresh(self) -> None:
        self.allowed = await allowed_networks(self.db)
        self.legacy = await legacy_networks(self.db)
        self.banned = await active_bans(self.db)

    async def keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.gateway_state_refresh_seconds)
            try:
                # Reads too take SQLite's write lock (BEGIN IMMEDIATE): a stop must not cut them.
                await uninterrupted(self.refresh())
            except Exception as exc:  # keep the last known state; the next pass retries
                log.warning("gateway state not refreshed", error=str(exc))

    async def score_failure(self, address: str) -> bool:
        """Count this address's recent login failures; ban it when over the limit.

        Runs to its end when the login is cancelled meanwhile (the client left).
        """
        return await uninterrupted(self._score_failure(address))

    async def _score_failure(self, address: str) -> bool:
        settings = self.settings
        since = _now() - timedelta(seconds=settings.gateway_ban_window_seconds)
        async with self.db.session() as session:
            # Failures before the end of an earlier ban (or its lifting) are forgiven.
            last_until = await session.scalar(
                select(func.max(Ban.until)).where(Ban.address == address)
            )
            if last_until is not None and last_until <= _now():
                since = max(since, last_until)
            failures = await session.scalar(
                select(func.count())
                .select_from(SessionEvent)
                .where(
                    SessionEvent.peer == address,
                    SessionEvent.kind == "login_failed",
                    SessionEvent.at >= since,
                )
            )
        if (failures or 0) < settings.gateway_ban_after_failures:
            return False
        until = await ban(
            self.db,
            address,
            seconds=settings.gateway_ban_seconds,
            failures=int(failures or 0),
            reason=f"{failures} failed logins within {settings.gateway_ban_window_seconds:g} s",
        )
        self.banned[address] = until
        return True


async def ban(
    db: Database, address: str, *, seconds: float, failures: int, reason: str
) -> datetime:
    until = _now() + timedelta(seconds=seconds)
    async with db.transaction() as session:
        # A ban still running is extended; an ended one stays as history.
        row = await session.scalar(
            select(Ban).where(Ban.address == address, Ban.until > _now()).limit(1)
        )
        if row is None:
            session.add(Ban(address=address, failures=failures, reason=reason, until=until))
        else:
            row.failures, row.reason, row.until = failures, reason, until
    SFTP_BANS.inc()
    log.warning("address banned", peer=address, until=until.isoformat(), failures=failures)
    return until


async def active_bans(db: Database) -> dict[str, datetime]:
    async with db.session() as session:
        rows = await session.execute(
            select(Ban.address, func.max(Ban.until)).where(Ban.until > _now()).group_by(Ban.address)
        )
        return {address: until for address, until in rows}


async def list_bans(db: Database, include_expired: bool = False) -> list[Ban]:
    async with db.session() as session:
        query = select(Ban).order_by(Ban.banned_at.desc())
        if not include_expired:
            query = query.where(Ban.until > _now())
        return list(await session.scalars(query))


async def lift(db: Database, address: str, *, actor: str = "system") -> bool:
    """End a ban now; failures before this moment no longer count against the address.

    The console audit records who lifted it, so the ban reads as lifted, not expired.
    """
    async with db.transaction() as session:
        row = await session.scalar(
            select(Ban).where(Ban.address == address, Ban.until > _now()).limit(1)
        )
        if row is None:
            return False
        row.until = row.lifted_at = _now()
        row.lifted_by = actor[:100]
        console_audit.record(
            session,
            actor=actor,
            action=LIFTED,
            target_type="address",
            target_id=address,
            summary=f"ban on {address} lifted ({row.failures} failed logins forgiven)",
        )
    return True
