"""The importer loses its database in the middle of a large file: its connections are
terminated, or the server crashes and restarts. The import rolls back, comes back and
completes once, and nothing of the cut attempt remains."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade
from courier.common.db.models import Feed, Tenant
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.support.deployed import ServiceProcess, deployment
from tests.support.exactly_once import (
    EARLIER,
    ROWS,
    assert_large_file_imported_once,
    backends_of,
    importing,
    leave_rows,
    receive,
    tally,
    wait_all_imported,
)
from tests.support.outages import service_env
from tests.support.private_pg import private_postgres, private_postgres_unavailable
from tests.support.services import eventually


async def _cut_mid_import(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    work: Path,
    cut: Callable[[ServiceProcess], object],
) -> None:
    """An earlier small file, then a large one; `cut` runs while the large one is in its
    transaction. Asserts it ends imported once, by the same importer process."""
    own = settings.model_copy(update={"ack_wait_seconds": 6, "max_deliver": 5})
    async with db.session() as s:
        feed = await s.scalar(select(Feed))
    assert feed is not None
    with deployment(work, service_env(own)) as stack:
        importer = stack.add("importer")
        await receive(db, storage, tenant, "leave_1.csv", leave_rows(EARLIER, hours=1))

        async def finished(n: int) -> bool:
            return (await tally(db)).finished >= n

        await eventually(lambda: finished(1), within=60)
        await receive(db, storage, tenant, "leave_2.csv", leave_rows(ROWS))
        holder = await eventually(lambda: importing(db, feed.id), within=60, interval=0.05)
        assert holder == importer.pid
        await asyncio.sleep(0.5)  # well into the file: staged, merging, nothing committed
        assert (await tally(db)).imports == 1, "the large file finished before the cut"
        cut_at = datetime.now(UTC)
        done = cut(importer)
        if asyncio.iscoroutine(done):
            await done

        await wait_all_imported(db, own, 2)
        # The importer recovered by itself: the same process, never restarted, and it
        # said what happened to the attempt that was cut.
        assert importer.alive() and importer.starts == 1, importer.log_tail()
        said = importer.log_path.read_text()
        assert "database error; the import was rolled back and the file comes back" in said

    await assert_large_file_imported_once(db, cut_at)


@pytest.mark.timeout(300)
async def test_terminated_database_connections_mid_import_roll_back_and_import_once(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    leave_feed: None,
    tmp_path: Path,
) -> None:
    async def terminate(importer: ServiceProcess) -> None:
        backends = await backends_of(db, importer.pid)
        assert backends, "the importer holds no database connection"
        async with db.session() as s:
            for backend in backends:
                await s.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})

    await _cut_mid_import(settings, db, storage, tenant, tmp_path / "services", terminate)


@pytest.mark.skipif(
    bool(private_postgres_unavailable()), reason=str(private_postgres_unavailable())
)
@pytest.mark.timeout(300)
async def test_a_database_restart_mid_import_rolls_back_and_imports_once(
    settings: Settings, storage: Storage, tmp_path: Path
) -> None:
    with private_postgres() as server:
        await upgrade(server.url)
        db = Database(server.url)
        try:
            tenant = await provision.ensure_tenant(db, "acme", "Acme Ltd", "Europe/London")
            await provision.upsert_feed(
                db, tenant, "leave-balances", "leave_balances", "leave_*.csv", {}
            )
            own = settings.model_copy(update={"database_url": server.url})

            async def restart(_: ServiceProcess) -> None:
                await asyncio.to_thread(server.crash_and_restart)

            await _cut_mid_import(own, db, storage, tenant, tmp_path / "services", restart)
        finally:
            await db.dispose()
