"""Pulling files from a vendor's OpenSSH server: stable files only, each exactly once."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile
from courier.common.db.models_sources import SourceFile
from courier.common.remote import HostKeyRefused, RemoteError
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.poller.fetch import Observations, poll_source, record_outcome
from tests.poller.conftest import MakeSource
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running
from tests.support.sshd import Sshd
from tests.support.staged import staged


def _drop(sshd: Sshd, name: str, data: bytes, age: float = 120) -> None:
    path = sshd.home / name
    path.write_bytes(data)
    past = time.time() - age
    os.utime(path, (past, past))


async def _received(db: Database) -> list[ReceivedFile]:
    async with db.session() as s:
        return list(await s.scalars(select(ReceivedFile).order_by(ReceivedFile.name)))


async def test_stable_file_is_fetched_once_even_after_a_restart(
    db: Database, storage: Storage, sshd: Sshd, make_source: MakeSource
) -> None:
    source = await make_source()
    data = leave_csv("E1,annual,8,2026-11-01")
    _drop(sshd, "leave_20261101.csv", data)
    _drop(sshd, "notes.txt", b"not ours")

    poller = Observations()
    first = await poll_source(db, storage, source, poller, "p1")
    assert first.fetched == [] and first.waiting == ["leave_20261101.csv"]
    second = await poll_source(db, storage, source, poller, "p1")
    assert second.fetched == ["leave_20261101.csv"]

    [row] = await _received(db)
    assert row.source == "poll"
    [event] = await staged(db, "courier.file.received")
    assert event.file_id == row.id  # type: ignore[attr-defined]
    assert await storage.read(row.storage_key) == data
    assert (sshd.home / "leave_20261101.csv").exists()  # after_fetch: leave

    restarted = Observations()
    for _ in range(3):
        again = await poll_source(db, storage, source, restarted, "p1-restarted")
        assert again.fetched == []
    assert len(await _received(db)) == 1

    # A new version of the same name is a new file.
    _drop(sshd, "leave_20261101.csv", leave_csv("E1,annual,9,2026-11-01"), age=60)
    await poll_source(db, storage, source, restarted, "p1-restarted")
    await poll_source(db, storage, source, restarted, "p1-restarted")
    assert len(await _received(db)) == 2


async def test_file_still_being_written_waits_until_it_holds_still(
    db: Database, storage: Storage, sshd: Sshd, make_source: MakeSource
) -> None:
    source = await make_source()
    obs = Observations()
    _drop(sshd, "leave_big.csv", b"employee_id,leave_type,balance_hours,as_of\n", age=0)
    await poll_source(db, storage, source, obs, "p1")
    # The vendor is still appending: size and mtime move between listings.
    with open(sshd.home / "leave_big.csv", "ab") as f:
        f.write(b"E1,annual,8,2026-11-01\n")
    result = await poll_source(db, storage, source, obs, "p1")
    assert result.fetched == []
    result = await poll_source(db, storage, source, obs, "p1")
    assert result.fetched == ["leave_big.csv"]
    [row] = await _received(db)
    assert row.size == (sshd.home / "leave_big.csv").stat().st_size


async def test_young_file_is_not_fetched_before_min_age(
    db: Database, storage: Storage, sshd: Sshd, make_source: MakeSource
) -> None:
    source = await make_source(min_age_seconds=3600)
    _drop(sshd, "leave_new.csv", leave_csv("E1,annual,8,2026-11-01"), age=10)
    obs = Observations()
    for _ in range(3):
        assert (await poll_source(db, storage, source, obs, "p1")).fetched == []


async def test_two_pollers_fetch_each_file_exactly_once(
    db: Database, storage: Storage, sshd: Sshd, make_source: MakeSource
) -> None:
    source = await make_source()
    for i in range(8):
        _drop(sshd, f"leave_2026110{i}.csv", leave_csv(f"E{i},annual,{i},2026-11-01"))
    a, b = Observations(), Observations()
    for _ in range(3):
        await asyncio.gather(
            poll_source(db, storage, source, a, "poller-a"),
            poll_source(db, storage, source, b, "poller-b"),
        )
    received = await _received(db)
    assert sorted(r.name for r in received) == [f"leave_2026110{i}.csv" for i in range(8)]
    async with db.session() as s:
        fetched = await s.scalar(
            select(func.count()).select_from(SourceFile).where(SourceFile.status == "fetched")
        )
    assert fetched == 8


@pytest.mark.parametrize("action", ["delete", "move"])
async def test_after_fetch_action_is_applied_on_the_vendor_server(
    db: Database, storage: Storage, sshd: Sshd, make_source: MakeSource, action: str
) -> None:
    source = await make_source(after_fetch=action)
    _drop(sshd, "leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    obs = Observations()
    await poll_source(db, storage, source, obs, "p1")
    await poll_source(db, storage, source, obs, "p1")
    assert not (sshd.home / "leave_1.csv").exists()
    assert (sshd.home / "processed" / "leave_1.csv").exists() == (action == "move")
    assert len(await _received(db)) == 1


async def test_changed_host_key_is_refused_and_nothing_is_fetched(
    db: Database, storage: Storage, sshd: Sshd, make_source: MakeSource
) -> None:
    source = await make_source()
    _drop(sshd, "leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    sshd.new_host_key()
    sshd.restart()
    with pytest.raises(HostKeyRefused, match="does not match the pinned"):
        await poll_source(db, storage, source, Observations(), "p1")
    assert await _received(db) == []


async def test_unreachable_source_alerts_once_after_the_configured_time(
    db: Database, storage: Storage, make_source: MakeSource
) -> None:
    from tests.support.infra import free_port

    source = await make_source(
        unreachable_alert_minutes=30, remote={"port": free_port(), "connect_timeout": 2}
    )
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    for minutes in (0, 10, 29, 31, 45, 60):
        with pytest.raises(RemoteError, match="connection refused"):
            await poll_source(db, storage, source, Observations(), "p1")
        await record_outcome(
            db, source, start + timedelta(minutes=minutes), "ConnectionRefusedError"
        )
    alerts = await staged(db, "courier.alert.raised")
    assert len(alerts) == 1
    assert alerts[0].kind == "source_unreachable"
    assert alerts[0].details["failing_since"] == start.isoformat()
    assert "payroll-vendor" in alerts[0].summary


async def test_poller_service_pulls_files_that_get_imported(
    settings: Settings, db: Database, sshd: Sshd, make_source: MakeSource, leave_feed: None
) -> None:
    await make_source(interval_seconds=5)
    _drop(sshd, "leave_20261103.csv", leave_csv("E7,annual,12,2026-11-03"))
    async with running("importer", settings), running("poller", settings):

        async def imported() -> Import | None:
            async with db.session() as s:
                return await s.scalar(select(Import).where(Import.finished_at.is_not(None)))

        imp = await eventually(imported, within=30)
    assert imp.file_name == "leave_20261103.csv" and imp.created == 1


async def test_failing_source_backs_off_and_recovers_to_its_interval(
    db: Database, make_source: MakeSource
) -> None:
    from courier.common.db.models_sources import Source
    from courier.poller.fetch import next_poll_delay

    source = await make_source(interval_seconds=60)
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    delays = []
    for n in range(6):
        await record_outcome(db, source, start + timedelta(minutes=n), "refused")
        async with db.session() as s:
            delays.append(next_poll_delay(await s.get(Source, source.id)))
    assert delays == [
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
        timedelta(minutes=15),
        timedelta(minutes=15),
        timedelta(minutes=15),
    ]
    await record_outcome(db, source, start + timedelta(minutes=30), None)
    async with db.session() as s:
        assert next_poll_delay(await s.get(Source, source.id)) == timedelta(minutes=1)
