"""An importer replica is SIGKILLed in the middle of a large file: the other replica imports
it after redelivery, exactly once, and the killed attempt leaves nothing behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.support.deployed import deployment
from tests.support.exactly_once import (
    EARLIER,
    ROWS,
    assert_large_file_imported_once,
    importing,
    leave_rows,
    receive,
    tally,
    wait_all_imported,
)
from tests.support.outages import service_env
from tests.support.services import eventually


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

        await wait_all_imported(db, own, 2)
        assert other.alive() and other.starts == 1, other.log_tail()

    await assert_large_file_imported_once(db, killed_at)
