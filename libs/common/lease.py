"""A lease on a row: one holder at a time, kept while it works, free when it stops.

Replicas share work through the database: a row (a source to poll, an export to
build) carries `lease_owner` and `lease_until`, taken by compare-and-set. The holder
renews it every third of its time to live, so a long piece of work keeps it, while a
holder that dies stops renewing and its lease runs out for another to take.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, update
from sqlalchemy.sql.elements import ColumnElement

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.logging import get_logger
from courier.common.tasks import uninterrupted

log = get_logger(__name__)

Clock = Callable[[], datetime]


class Leasable(Protocol):
    """A table whose rows, keyed by `id`, carry a lease."""

    __tablename__: str
    id: Any
    lease_owner: Any
    lease_until: Any


@dataclass
class Lease:
    """A lease being held; `lost` is set when renewing finds it gone (or cannot, past its
    expiry), so the body stops before a step another holder may now be doing too."""

    owner: str
    until: datetime
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def held(self) -> bool:
        return not self.lost.is_set()


def free(model: type[Leasable], now: datetime) -> ColumnElement[bool]:
    """Rows nobody holds: never leased, released, or left to run out by a holder that died."""
    return or_(model.lease_until.is_(None), model.lease_until < now)


async def _set(
    db: Database, model: type[Leasable], key: Any, owner: str, until: datetime | None
) -> bool:
    """Move the end of `owner`'s lease, or with None give it up; False if it is not theirs."""
    values = {"lease_until": until} if until else {"lease_owner": None, "lease_until": None}
    async with db.transaction() as session:
        result = await session.execute(
            update(model).where(model.id == key, model.lease_owner == owner).values(**values)
        )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _context(model: type[Leasable], key: Any, owner: str) -> dict[str, str]:
    return {"table": model.__tablename__, "key": str(key), "owner": owner}


async def _keep(
    db: Database, model: type[Leasable], key: Any, lease: Lease, ttl: timedelta, clock: Clock
) -> None:
    context = _context(model, key, lease.owner)
    while True:
        await asyncio.sleep(ttl.total_seconds() / 3)
        until = clock() + ttl
        try:
            renewed = await uninterrupted(_set(db, model, key, lease.owner, until))
        except Exception as exc:  # the database away for a moment: the next tick retries
            log.warning("lease not renewed", error=str(exc), **context)
            if clock() < lease.until:
                continue
            renewed = False
        if not renewed:
            lease.lost.set()
            log.error("lease lost", **context)
            return
        lease.until = until


@asynccontextmanager
async def hold(
    db: Database,
    model: type[Leasable],
    key: Any,
    owner: str,
    ttl: timedelta,
    *,
    clock: Clock = utcnow,
    where: Sequence[ColumnElement[bool]] = (),
) -> AsyncIterator[Lease | None]:
    """Hold the lease on row `key` while the body runs: None if someone else has it (or the
    row does not match `where`).

    Renewed in the background every `ttl / 3`; released at the end, however the body
    ends (a lease that cannot be released runs out after `ttl`).
    """
    now = clock()
    until = now + ttl
    async with db.transaction() as session:
        taken = await session.execute(
            update(model)
            .where(model.id == key, free(model, now), *where)
            .values(lease_owner=owner, lease_until=until)
        )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        yield None
        return
    lease = Lease(owner, until)
    keeper = asyncio.create_task(_keep(db, model, key, lease, ttl, clock))
    try:
        yield lease
    finally:
        keeper.cancel()
        try:
            await asyncio.wait({keeper})
        finally:
            try:
                await uninterrupted(_set(db, model, key, owner, None))
            except Exception as exc:
                log.warning(
                    "lease not released; it runs out", error=str(exc), **_context(model, key, owner)
                )
