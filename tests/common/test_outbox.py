"""Events committed with their change reach the bus once, whatever happens in between."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from courier.common import outbox
from courier.common.db.engine import Database
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import AlertRaised, Event


def alert(n: int) -> AlertRaised:
    return AlertRaised(kind="missing_file", cause_key=f"feed:{n}", summary=f"alert {n}")


class Bus:
    """What the bus received; refuses while `down`."""

    def __init__(self) -> None:
        self.got: list[Event] = []
        self.down = False

    async def publish(self, event: Event) -> None:
        if self.down:
            raise ConnectionError("nats: no servers available for connection")
        await asyncio.sleep(0)  # another relay may run meanwhile
        self.got.append(event)


async def rows(db: Database) -> list[OutboxEvent]:
    async with db.session() as s:
        return list(await s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


async def test_events_of_a_rolled_back_change_are_never_sent(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            outbox.stage(s, alert(1))
            raise RuntimeError("the change failed")
    bus = Bus()
    assert await outbox.flush(db, bus.publish) == 0
    assert bus.got == [] and await rows(db) == []


async def test_staged_events_are_sent_in_order_and_once(db: Database) -> None:
    staged = [alert(1), alert(2), alert(3)]
    async with db.transaction() as s:
        outbox.stage(s, *staged[:2])
    async with db.transaction() as s:
        outbox.stage(s, staged[2])
    bus = Bus()
    assert await outbox.flush(db, bus.publish, limit=2) == 3
    assert await outbox.flush(db, bus.publish) == 0
    assert [e.cause_key for e in bus.got] == ["feed:1", "feed:2", "feed:3"]  # type: ignore[attr-defined]
    # The very event, same dedupe id: a repeat would be dropped by the stream.
    assert [e.msg_id() for e in bus.got] == [e.msg_id() for e in staged]
    assert all(r.published_at is not None for r in await rows(db))
    assert await outbox.pending(db) == (0, 0.0)


async def test_bus_outage_keeps_the_event_until_it_can_be_sent(db: Database) -> None:
    async with db.transaction() as s:
        outbox.stage(s, alert(1), alert(2))
    bus = Bus()
    bus.down = True
    assert await outbox.flush(db, bus.publish) == 0
    [first, second] = await rows(db)
    assert (first.attempts, first.published_at) == (1, None)
    assert "no servers available" in (first.last_error or "")
    assert (second.attempts, second.published_at) == (0, None)
    count, age = await outbox.pending(db)
    assert count == 2 and age >= 0

    bus.down = False
    stopping = asyncio.Event()
    relay = asyncio.create_task(outbox.relay(db, bus.publish, stopping, every=0.05, keep_days=7))
    for _ in range(100):
        if len(bus.got) == 2:
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await relay
    assert [e.cause_key for e in bus.got] == ["feed:1", "feed:2"]  # type: ignore[attr-defined]
    assert await outbox.pending(db) == (0, 0.0)


async def test_a_commit_that_staged_events_wakes_the_relay_at_once(db: Database) -> None:
    bus = Bus()
    stopping = asyncio.Event()
    # A pass every minute: only the wake-up on commit can publish within the test.
    relay = asyncio.create_task(outbox.relay(db, bus.publish, stopping, every=60, keep_days=7))
    await asyncio.sleep(0.2)  # the relay's first pass found nothing and waits
    async with db.transaction() as s:
        outbox.stage(s, alert(1))
    for _ in range(100):
        if bus.got:
            break
        await asyncio.sleep(0.02)
    async with db.transaction() as s:
        s.add_all([])  # a commit that staged nothing wakes nobody
    stopping.set()
    await relay
    assert [e.cause_key for e in bus.got] == ["feed:1"]  # type: ignore[attr-defined]


async def test_a_rolled_back_transaction_stages_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            outbox.stage(s, alert(1))
            raise RuntimeError("the change failed")
    assert await rows(db) == []


async def test_published_events_are_pruned_after_the_keep_time(db: Database) -> None:
    async with db.transaction() as s:
        outbox.stage(s, alert(1))
    bus = Bus()
    await outbox.flush(db, bus.publish)
    assert await outbox.prune(db, timedelta(days=7)) == 0
    assert await outbox.prune(db, timedelta(seconds=-1)) == 1
    assert await rows(db) == []


async def test_two_relays_send_each_event_once(db: Database, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite runs one relay")
    events = [alert(n) for n in range(300)]
    async with db.transaction() as s:
        outbox.stage(s, *events)
    bus = Bus()
    other = Database(database_url)
    try:
        sent = await asyncio.gather(
            outbox.flush(db, bus.publish, limit=25), outbox.flush(other, bus.publish, limit=25)
        )
    finally:
        await other.dispose()
    assert sum(sent) == 300
    assert sorted(uuid.UUID(str(e.event_id)) for e in bus.got) == sorted(e.event_id for e in events)


async def test_an_unreadable_event_does_not_hold_up_the_others(db: Database) -> None:
    async with db.transaction() as s:
        s.add(OutboxEvent(subject="courier.alert.raised", msg_id="x", payload={"kind": 1}))
        outbox.stage(s, alert(2))
    bus = Bus()
    assert await outbox.flush(db, bus.publish, limit=1) == 1
    assert [e.cause_key for e in bus.got] == ["feed:2"]  # type: ignore[attr-defined]
    bad, good = await rows(db)
    assert bad.published_at is None and (bad.last_error or "").startswith("unreadable")
    assert good.published_at is not None
    assert (await outbox.pending(db))[0] == 1  # still visible to whoever watches the gauge
