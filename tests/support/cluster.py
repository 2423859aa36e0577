"""A three-node JetStream cluster on loopback, as production runs the bus: each node can be
SIGKILLed and brought back on the same ports and store (a lost pod and its return)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats

from courier.common.bus import Bus
from courier.common.settings import Settings
from tests.support.infra import free_port, nats_server_binary, wait_port


@dataclass
class NatsNode:
    """One cluster node: its client port, its route port and its own store."""

    name: str
    port: int
    route: int
    store: Path
    peers: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsNode:
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.peers)
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.store), "--server_name", self.name, "--cluster_name", "courier",
             "--cluster", f"nats://127.0.0.1:{self.route}", "--routes", routes],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node vanishes without telling its peers or its clients."""
        if self.proc is not None and self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class NatsCluster:
    nodes: dict[str, NatsNode]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes.values()]

    @property
    def url(self) -> str:
        """Every node, comma-separated, as `COURIER_NATS_URL` takes them."""
        return ",".join(self.urls)

    def others(self, name: str) -> list[NatsNode]:
        return [node for n, node in self.nodes.items() if n != name]


@contextlib.contextmanager
def three_nodes(store: Path) -> Iterator[NatsCluster]:
    """A three-node JetStream cluster on loopback ports, stopped when the block ends."""
    names = [f"n{i}" for i in range(3)]
    routes = {name: free_port() for name in names}
    cluster = NatsCluster(
        {
            name: NatsNode(
                name,
                free_port(),
                routes[name],
                store / name,
                peers=[p for n, p in routes.items() if n != name],
            )
            for name in names
        }
    )
    try:
        for node in cluster.nodes.values():
            node.start()
        for node in cluster.nodes.values():
            wait_port("127.0.0.1", node.port)
        yield cluster
    finally:
        for node in cluster.nodes.values():
            node.stop()


async def stream_leader(urls: list[str], stream: str) -> str | None:
    """The name of the node leading `stream` now, asked of the first node that answers."""
    for url in urls:
        with contextlib.suppress(Exception):
            nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
            try:
                info = await nc.jetstream().stream_info(stream)
                return info.cluster.leader if info.cluster else None
            finally:
                await nc.close()
    return None


async def fully_replicated(
    urls: list[str], stream: str, copies: int = 3, within: float = 60
) -> str:
    """Wait until `stream` is held by `copies` nodes, every follower current, and return its
    leader. A scale-up (replicas 1 -> 3) is answered before the copies exist: a node lost
    before then takes the stream with it."""
    deadline = asyncio.get_running_loop().time() + within
    seen = None
    while asyncio.get_running_loop().time() < deadline:
        for url in urls:
            with contextlib.suppress(Exception):
                nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
                try:
                    seen = (await nc.jetstream().stream_info(stream)).cluster
                finally:
                    await nc.close()
                break
        followers = (seen.replicas or []) if seen else []
        if (
            seen is not None
            and seen.leader
            and len(followers) == copies - 1
            and all(peer.current and not peer.offline for peer in followers)
        ):
            return seen.leader
        await asyncio.sleep(0.5)
    raise AssertionError(f"{stream} not held by {copies} current nodes within {within} s: {seen}")


async def declare_streams(settings: Settings, within: float = 60) -> None:
    """Declare Courier's streams on a cluster that may still be electing its leaders (a
    fresh cluster answers "no leader" for a few seconds)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        bus = Bus(settings, client_name="courier-test")
        try:
            await bus.connect()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            with contextlib.suppress(Exception):
                await bus.stop()


async def stream_messages(urls: list[str], stream: str) -> int:
    """How many messages `stream` holds (each event once, if publishing deduplicated)."""
    nc = await nats.connect(urls, connect_timeout=2, max_reconnect_attempts=1)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()
