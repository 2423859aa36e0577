"""An importer replica is SIGKILLed in the middle of a large file: the other replica imports
it after redelivery, exactly once, and the killed attempt leaves nothing behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, LeaveBalance, Tenant
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.support.cluster import stream_messages
from tests.support.deployed import deployment
from tests.support.exactly_once import importing, leave_rows, receive, tally
from tests.support.outages import service_env
from tests.support.services import eventually

ROWS = 150_000
EARLIER = 100  # balances an earlier file set, which the large file updates


@pytest.mark.timeout(300)
async def test_an_importer_killed_mid_file_leaves_it_to_the_other_replica_once(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    leave_feed: None,
    tmp_path: Path,
) -> None:
    own = settings.model_copy(update={"ack_wait_seconds": 6, "max_deliver": 5})
    async with db.session() as s:
        feed = await s.scalar(select(Feed))
    assert feed is not None
    with deployment(tmp_path / "services", service_env(own)) as stack:
        replicas = [stack.add("importer", start=False), stack.add("importer", start=False)]
        await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas))
        await receive(db, storage, tenant, "leave_1.csv", leave_rows(EARLIER, hours=1))

        async def finished(n: int) -> bool:
            return (await tally(db)).finished >= n

        await eventually(lambda: finished(1), within=60)
        await receive(db, storage, tenant, "leave_2.csv", leave_rows(ROWS))

        holder = await eventually(lambda: importing(db, feed.id), within=60, interval=0.05)
        [taker] = [r for r in replicas if r.pid == holder]
        # Well into the file: the rows are being staged and merged, nothing committed.
        await asyncio.sleep(0.5)
        assert (await tally(db)).imports == 1, "the large file finished before the kill"
        killed_at = datetime.now(UTC)
        taker.kill()
        [other] = [r for r in replicas if r is not taker]

        await eventually(lambda: finished(2), within=180, interval=0.5)
        assert other.alive() and other.starts == 1, other.log_tail()

        async def relayed() -> bool:
            return (await tally(db)).unpublished == 0

        await eventually(relayed, within=30)
        # On the bus, each event once.
        on_bus = {
            name: await stream_messages([own.nats_url], f"{own.nats_namespace}_{name}")
            for name in ("COURIER_FILES", "COURIER_IMPORTS")
        }
        assert on_bus == {"COURIER_FILES": 2, "COURIER_IMPORTS": 2}

    counts = await tally(db)
    assert counts.received == counts.imports == counts.files_imported == 2
    assert counts.audit_rows == EARLIER + ROWS
    assert counts.balances == ROWS
    assert counts.completions == 2
    async with db.session() as s:
        big = await s.scalar(select(Import).where(Import.file_name == "leave_2.csv"))
        earlier = {
            b.employee_id: b.balance_hours
            for b in await s.scalars(
                select(LeaveBalance).where(LeaveBalance.employee_id < "E0000100")
            )
        }
    assert big is not None
    # The import that committed is a new attempt, begun after the kill.
    assert big.started_at > killed_at
    # Counted against the balances as they were before the killed attempt: it left none.
    assert (big.status, big.created, big.updated, big.unchanged) == (
        "completed", ROWS - EARLIER, EARLIER, 0,
    )  # fmt: skip
    assert earlier == {f"E{i:07d}": Decimal(8 + i % 40) for i in range(EARLIER)}
