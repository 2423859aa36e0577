"""Row leases: one holder at a time, kept by renewal, free after a crash or a release."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_sources import Source
from courier.common.lease import hold

TTL = timedelta(seconds=0.6)


@pytest.fixture
async def source_id(db: Database, tenant: Tenant) -> uuid.UUID:
    async with db.transaction() as s:
        row = Source(tenant_id=tenant.id, name="vendor", spec={})
        s.add(row)
    return row.id


async def _lease(db: Database, source_id: uuid.UUID) -> tuple[str | None, datetime | None]:
    async with db.session() as s:
        row = await s.get(Source, source_id)
        assert row is not None
        return row.lease_owner, row.lease_until


async def test_a_second_holder_is_refused_until_the_first_releases(
    db: Database, source_id: uuid.UUID
) -> None:
    async with hold(db, Source, source_id, "a", TTL) as first:
        assert first is not None and first.held
        assert (await _lease(db, source_id))[0] == "a"
        for other in ("b", "a"):  # not even a second body under the same name
            async with hold(db, Source, source_id, other, TTL) as second:
                assert second is None
    assert await _lease(db, source_id) == (None, None)
    async with hold(db, Source, source_id, "b", TTL) as second:
        assert second is not None


async def test_a_long_body_keeps_the_lease_past_its_ttl(db: Database, source_id: uuid.UUID) -> None:
    taken_at = utcnow()
    async with hold(db, Source, source_id, "a", TTL) as lease:
        assert lease is not None
        await asyncio.sleep(TTL.total_seconds() * 2.5)
        owner, until = await _lease(db, source_id)
        assert owner == "a" and until is not None and until > taken_at + 2 * TTL
        async with hold(db, Source, source_id, "b", TTL) as second:
            assert second is None
        assert lease.held


async def test_a_crashed_holders_lease_is_taken_after_it_runs_out(
    db: Database, source_id: uuid.UUID
) -> None:
    async with db.transaction() as s:  # what a holder that died leaves behind
        row = await s.get(Source, source_id)
        assert row is not None
        row.lease_owner, row.lease_until = "crashed", utcnow() + TTL
    async with hold(db, Source, source_id, "b", TTL) as early:
        assert early is None
    later = utcnow() + TTL + timedelta(seconds=1)
    async with hold(db, Source, source_id, "b", TTL, clock=lambda: later) as lease:
        assert lease is not None
        assert await _lease(db, source_id) == ("b", later + TTL)


async def test_a_lease_taken_over_is_signalled_and_left_to_its_new_holder(
    db: Database, source_id: uuid.UUID
) -> None:
    async with hold(db, Source, source_id, "a", TTL) as lease:
        assert lease is not None
        async with db.transaction() as s:  # as if "a" had stalled past its expiry
            row = await s.get(Source, source_id)
            assert row is not None
            row.lease_owner = "thief"
        await asyncio.wait_for(lease.lost.wait(), TTL.total_seconds() * 3)
        assert not lease.held
    assert (await _lease(db, source_id))[0] == "thief"


async def test_a_body_that_fails_or_is_cancelled_releases(
    db: Database, source_id: uuid.UUID
) -> None:
    with pytest.raises(RuntimeError):
        async with hold(db, Source, source_id, "a", TTL):
            raise RuntimeError("boom")
    assert await _lease(db, source_id) == (None, None)

    started = asyncio.Event()

    async def work() -> None:
        async with hold(db, Source, source_id, "a", TTL):
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _lease(db, source_id) == (None, None)
