"""The production JetStream layout: three nodes, every stream kept three times, so an
event the bus acked survives the loss of any one node."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import nats
import pytest

from courier.common.bus import Bus
from courier.common.events import FileReceived
from courier.common.settings import Settings
from tests.support.cluster import fully_replicated, three_nodes


def _settings(urls: list[str], namespace: str, replicas: int) -> Settings:
    return Settings(nats_url=",".join(urls), nats_namespace=namespace, nats_replicas=replicas)


async def _connected(settings: Settings) -> Bus:
    """A bus whose streams are declared, once the cluster has elected its leader."""
    for _ in range(60):
        bus = Bus(settings, client_name="courier-test")
        try:
            await bus.connect()
            return bus
        except Exception:
            with contextlib.suppress(Exception):
                await bus.stop()
            await asyncio.sleep(0.5)
    raise AssertionError("the cluster never took the streams")


async def _stream(url: str, name: str):  # type: ignore[no-untyped-def]
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().stream_info(name)
    finally:
        await nc.close()


@pytest.mark.timeout(120)
async def test_an_acked_event_survives_the_loss_of_its_streams_leader(tmp_path: Path) -> None:
    namespace = f"t{uuid.uuid4().hex[:8]}"
    with three_nodes(tmp_path) as cluster:
        urls = cluster.urls
        # An older version declared the streams with one copy; a start with
        # COURIER_NATS_REPLICAS=3 raises them to three.
        bus = await _connected(_settings(urls, namespace, replicas=1))
        await bus.stop()
        bus = await _connected(_settings(urls, namespace, replicas=3))
        stream = bus.stream("COURIER_FILES")
        try:
            event = FileReceived(
                file_id=uuid.uuid4(), tenant_id=uuid.uuid4(), tenant="acme",
                name="leave_1.csv", storage_key="k", size=1, sha256="0" * 64,
            )  # fmt: skip
            # Right after the scale-up the stream may still be electing its leader: the
            # outbox relay would try again, and the message id keeps it one message.
            for _ in range(40):
                try:
                    await bus.publish(event)
                    break
                except Exception:
                    await asyncio.sleep(0.5)
            else:
                raise AssertionError("the cluster never acked the event")
        finally:
            await bus.stop()

        info = await _stream(urls[0], stream)
        assert info.config.num_replicas == 3
        # The scale-up is answered before the new copies exist: wait until they do.
        leader = await fully_replicated(urls, stream)
        lost = cluster.nodes[leader].url
        cluster.nodes[leader].stop()

        left = [url for url in urls if url != lost]

        async def kept() -> int:
            for _ in range(60):
                with contextlib.suppress(Exception):
                    info = await _stream(left[0], stream)
                    if info.cluster.leader and info.cluster.leader != leader:
                        return info.state.messages
                await asyncio.sleep(0.5)
            raise AssertionError("no new leader for the stream")

        assert await kept() == 1


@pytest.mark.timeout(120)
async def test_a_service_started_while_the_cluster_has_no_quorum_waits_for_it(
    tmp_path: Path,
) -> None:
    """After a whole-cluster restart pods may start before the nodes elect leaders: the bus
    keeps declaring its streams until JetStream answers, instead of the pod crash-looping."""
    namespace = f"t{uuid.uuid4().hex[:8]}"
    with three_nodes(tmp_path) as cluster:
        first, *others = cluster.nodes.values()
        for node in others:
            node.stop()
        bus = Bus(_settings([first.url], namespace, replicas=3), client_name="courier-test")
        starting = asyncio.create_task(bus.connect())
        try:
            await asyncio.sleep(5)
            # One node of three: no quorum, so no stream can be declared yet.
            assert not starting.done(), starting
            for node in others:
                node.start()
            await asyncio.wait_for(starting, 90)
            info = await _stream(first.url, bus.stream("COURIER_FILES"))
            assert info.config.num_replicas == 3
        finally:
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            await bus.stop()
