"""Periodic passes of the backup service (reconciliation, retention) run by one replica.

Each pass has a row in `backup_passes`: the replica that takes its lease runs it, and
a pass that finished within its interval is not run again by another replica.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import update

from courier.common.db.base import utcnow
from courier.common.db.engine import Database, upsert_insert
from courier.common.db.models_backup import BackupPass
from courier.common.lease import hold

T = TypeVar("T")


async def once_per(
    db: Database, pass_id: str, owner: str, every: timedelta, body: Callable[[], Awaitable[T]]
) -> T | None:
    """`body()` if no replica ran pass `pass_id` within `every`; None when it was not our turn."""
    started = utcnow()
    async with db.transaction() as session:
        await session.execute(
            upsert_insert(session, BackupPass.__table__)
            .values(id=pass_id)
            .on_conflict_do_nothing(index_elements=["id"])
        )
    ran_recently = BackupPass.last_finished_at > started - every
    async with hold(
        db,
        BackupPass,
        pass_id,
        owner,
        max(every, timedelta(minutes=1)),
        where=[~ran_recently | BackupPass.last_finished_at.is_(None)],
    ) as lease:
        if lease is None:
            return None
        result = await body()
        async with db.transaction() as session:
            await session.execute(
                update(BackupPass).where(BackupPass.id == pass_id).values(last_finished_at=utcnow())
            )
    return result
