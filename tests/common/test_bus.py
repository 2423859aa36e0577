"""Delivery guarantees on a real nats-server: dedupe, redelivery after failure, durability."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from courier.common.bus import Bus, stream_for
from courier.common.events import EVENT_TYPES, FileReceived, NoticesRaised
from courier.common.settings import Settings


def _event() -> FileReceived:
    return FileReceived(
        file_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        tenant="acme",
        name="leave_1.csv",
        storage_key="tenants/acme/received/x/leave_1.csv",
        size=10,
        sha256="0" * 64,
    )


async def test_retried_publish_is_one_message(nats_server_url: str) -> None:
    settings = Settings(nats_url=nats_server_url, nats_namespace=f"t{uuid.uuid4().hex[:8]}")
    bus = Bus(settings)
    await bus.connect()
    try:
        event = _event()
        first = await bus.publish(event)
        again = await bus.publish(event)
        assert again.duplicate and again.seq == first.seq
    finally:
        await bus.stop()


async def test_failed_handler_gets_the_message_again_then_acks(nats_server_url: str) -> None:
    settings = Settings(
        nats_url=nats_server_url, nats_namespace=f"t{uuid.uuid4().hex[:8]}", ack_wait_seconds=5
    )
    bus = Bus(settings)
    attempts: list[uuid.UUID] = []
    handled = asyncio.Event()

    async def flaky(event: FileReceived) -> None:
        attempts.append(event.file_id)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")
        handled.set()

    bus.consume(FileReceived, "importer", flaky)
    await bus.start()
    try:
        event = _event()
        await bus.publish(event)
        await asyncio.wait_for(handled.wait(), 20)
        await asyncio.sleep(0.5)
        assert attempts == [event.file_id, event.file_id]
    finally:
        await bus.stop()


async def test_message_published_while_consumer_is_down_is_delivered_later(
    nats_server_url: str,
) -> None:
    settings = Settings(nats_url=nats_server_url, nats_namespace=f"t{uuid.uuid4().hex[:8]}")
    received: list[uuid.UUID] = []
    first = Bus(settings)

    async def handler(event: FileReceived) -> None:
        received.append(event.file_id)

    first.consume(FileReceived, "importer", handler)
    await first.start()
    await first.stop()

    publisher = Bus(settings)
    await publisher.connect()
    event = _event()
    await publisher.publish(event)
    await publisher.stop()

    second = Bus(settings)
    second.consume(FileReceived, "importer", handler)
    await second.start()
    try:
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.1)
        assert received == [event.file_id]
    finally:
        await second.stop()


def test_every_subject_finds_the_stream_that_holds_it() -> None:
    assert stream_for("courier.alert.raised") == "COURIER_ALERTS"
    # The second subject of a stream counts as much as the first.
    assert stream_for("courier.notice.raised") == "COURIER_ALERTS"
    assert stream_for("courier.import.completed") == "COURIER_IMPORTS"
    for subject in ("courier.notices.raised", "courier.notice", "courier.unknown.x"):
        with pytest.raises(ValueError, match="no stream holds"):
            stream_for(subject)
    assert {subject: stream_for(subject) for subject in EVENT_TYPES}  # none left out


async def test_notices_raised_are_stored_and_delivered_to_a_durable_consumer(
    nats_server_url: str,
) -> None:
    settings = Settings(nats_url=nats_server_url, nats_namespace=f"t{uuid.uuid4().hex[:8]}")
    publisher = Bus(settings)
    await publisher.connect()
    event = NoticesRaised(notice_ids=[1, 2, 3])
    await publisher.publish(event)
    await publisher.stop()

    got: list[list[int]] = []
    consumer = Bus(settings)

    async def handler(received: NoticesRaised) -> None:
        got.append(received.notice_ids)

    consumer.consume(NoticesRaised, "notifier-notices", handler)
    await consumer.start()
    try:
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.1)
        assert got == [[1, 2, 3]]
    finally:
        await consumer.stop()
