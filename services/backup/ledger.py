"""Reading and writing the backup ledger.

A row is claimed before its copy starts (its `next_attempt_at` moved past the copy's
expected end), so two replicas, or an event and a reconciliation pass, never upload
the same object version at once: the second finds the claim and leaves it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from tenacity import RetryCallState, wait_exponential

from courier.backup.transfer import Copied
from courier.common.db.engine import upsert_insert
from courier.common.db.models_backup import BackupEntry

UNCONFIRMED = ("pending", "failed")


async def note(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    region: str,
    key: str,
    size: int,
    sha256: str,
    origin: str,
    now: datetime,
) -> BackupEntry:
    """The row of this object version, created pending if there is none (idempotent)."""
    await session.execute(
        upsert_insert(session, BackupEntry.__table__)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            region=region,
            key=key,
            size=size,
            sha256=sha256,
            origin=origin,
            status="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key", "sha256"])
    )
    entry = await session.scalar(
        select(BackupEntry)
        .where(BackupEntry.key == key, BackupEntry.sha256 == sha256)
        .execution_options(populate_existing=True)
    )
    assert entry is not None
    return entry


def due(now: datetime) -> ColumnElement[bool]:
    """Unconfirmed rows nobody is copying and whose backoff has run out."""
    return and_(
        BackupEntry.status.in_(UNCONFIRMED),
        or_(BackupEntry.next_attempt_at.is_(None), BackupEntry.next_attempt_at <= now),
    )


async def claim(session: AsyncSession, entry_id: uuid.UUID, now: datetime, ttl: timedelta) -> bool:
    """Take the row for one copy attempt; False if it is confirmed or someone has it."""
    result = await session.execute(
        update(BackupEntry)
        .where(BackupEntry.id == entry_id, due(now))
        .values(next_attempt_at=now + ttl, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def confirm(
    session: AsyncSession, entry_id: uuid.UUID, copied: Copied, now: datetime
) -> None:
    await session.execute(
        update(BackupEntry)
        .where(BackupEntry.id == entry_id)
        .values(
            status="confirmed",
            backup_version_id=copied.version_id,
            attempts=BackupEntry.attempts + 1,
            last_error=None,
            next_attempt_at=None,
            confirmed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """Exponential backoff after `attempts` failures (tenacity's schedule, kept in the row)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempts)
    return timedelta(seconds=wait_exponential(multiplier=base, max=cap)(state))


async def fail(
    session: AsyncSession,
    entry_id: uuid.UUID,
    error: str,
    now: datetime,
    *,
    base: float,
    cap: float,
) -> int:
    """Record a failed attempt and when to try again; returns the attempts so far."""
    attempts = await session.scalar(select(BackupEntry.attempts).where(BackupEntry.id == entry_id))
    attempts = (attempts or 0) + 1
    await session.execute(
        update(BackupEntry)
        .where(BackupEntry.id == entry_id, BackupEntry.status != "confirmed")
        .values(
            status="failed",
            attempts=attempts,
            last_error=error[:2000],
            next_attempt_at=now + backoff(attempts, base, cap),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return attempts


async def gone(session: AsyncSession, entry_id: uuid.UUID, error: str, now: datetime) -> None:
    """The object left the primary store before it was copied (a partner deleted a
    collected file): nothing is left to lose, so the row stops waiting."""
    await session.execute(
        update(BackupEntry)
        .where(BackupEntry.id == entry_id, BackupEntry.status != "confirmed")
        .values(
            status="deleted",
            attempts=BackupEntry.attempts + 1,
            last_error=error[:2000],
            next_attempt_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Backlog:
    region: str
    pending: int
    failed: int
    oldest: datetime | None


async def backlog(session: AsyncSession, tenant_id: uuid.UUID | None = None) -> list[Backlog]:
    """Unconfirmed rows per region: how many, and since when the oldest waits."""
    query = (
        select(
            BackupEntry.region,
            func.count().filter(BackupEntry.status == "pending"),
            func.count().filter(BackupEntry.status == "failed"),
            func.min(BackupEntry.created_at),
        )
        .where(BackupEntry.status.in_(UNCONFIRMED))
        .group_by(BackupEntry.region)
    )
    if tenant_id is not None:
        query = query.where(BackupEntry.tenant_id == tenant_id)
    rows = (await session.execute(query)).all()
    return [
        Backlog(region, pending, failed, _aware(oldest)) for region, pending, failed, oldest in rows
    ]


def _aware(value: datetime | None) -> datetime | None:
    # min() over a column goes around the column type: SQLite hands back a naive value.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
