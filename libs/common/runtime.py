"""What a service process holds for its lifetime, and how it starts and stops."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from sqlalchemy import text
from starlette.routing import Route

from courier.common.bus import Bus
from courier.common.clock import Clock, SystemClock
from courier.common.db.engine import Database
from courier.common.health import serve_health
from courier.common.heartbeat import beat
from courier.common.identity import instance_name
from courier.common.logging import configure_logging, get_logger
from courier.common.outbox import relay
from courier.common.regions import RegionalStorage, Regions
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.common.tasks import uninterrupted

Step = Callable[[], Awaitable[object]]


class Runtime:
    """Adapters (database, bus, storage) wired once per service process."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.instance = instance_name(name)
        self.db = Database(settings.database_url, application_name=self.instance)
        self.bus = Bus(settings, client_name=f"courier-{name}")
        # Every file goes to its tenant's region: services write through this unchanged.
        self.regional = RegionalStorage(Regions(settings), self.db)
        self.storage: Storage = self.regional
        self.stopping = asyncio.Event()
        self.clock: Clock = SystemClock()
        self.log = get_logger(f"courier.{name}")
        self.ready_checks: dict[str, Callable[[], Awaitable[bool]]] = {
            "database": self._db_ready,
            "bus": self.bus.ping,
        }
        # A service's own routes on its health port (set before `run`).
        self.health_routes: list[Route] = []

    async def _db_ready(self) -> bool:
        async with self.db.session() as session:
            await session.execute(text("SELECT 1"))
        return True

    async def run(
        self,
        *workers: Coroutine[Any, Any, None],
        drain: Step | None = None,
        last: Step | None = None,
    ) -> None:
        """Start the bus (subscribers registered before this call) and run until stopped.

        A stop is one step after another, each finished before the next begins:
        `drain` (take nothing new and let work in flight end, workers still running),
        then the workers (cancelled; each lets its database step finish), then `last`
        (final writes, nobody else writing), then the bus and the database close.
        """
        await self.bus.start()
        tasks = [
            asyncio.create_task(w)
            for w in (
                *workers,
                serve_health(
                    self.settings.health_host,
                    self.settings.health_port,
                    self.ready_checks,
                    self.health_routes,
                ),
                beat(
                    self.db, self.name, self.instance, self.clock, self.settings.heartbeat_seconds
                ),
                relay(
                    self.db,
                    self.bus.publish,
                    self.stopping,
                    every=self.settings.outbox_relay_seconds,
                    keep_days=self.settings.outbox_keep_days,
                ),
            )
        ]
        stop_task = asyncio.create_task(self.stopping.wait())
        self.log.info("service started")
        pending: set[asyncio.Task[Any]] = {*tasks, stop_task}
        try:
            # A worker that returns is done with its job (a one-off catch-up, say);
            # one that raises takes the service down so the orchestrator restarts it.
            while stop_task in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stop_task and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            stop_task.cancel()
            try:
                await self._stop_in_order(drain, lambda: _end_workers(tasks), last)
            finally:
                await self.close()
                self.log.info("service stopped")

    async def _stop_in_order(self, *steps: Step | None) -> None:
        """Run every step to its end, in order. A cancellation of the service meanwhile
        neither cuts a step short nor skips the next; it goes on after the last."""
        cancelled: asyncio.CancelledError | None = None
        for step in steps:
            if step is None:
                continue
            try:
                await uninterrupted(step())
            except asyncio.CancelledError as exc:
                cancelled = exc
            except Exception:
                self.log.exception("stop step failed")
        if cancelled is not None:
            raise cancelled

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.stop()
        with contextlib.suppress(Exception):
            await self.regional.close()
        await self.db.dispose()


async def _end_workers(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the workers and wait for each; their own errors were handled while running."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()


def run_forever(name: str, settings: Settings, main: Callable[[Runtime], Awaitable[None]]) -> None:
    """Entry point of `courier service NAME`: logs, signals, one runtime."""
    settings = settings.model_copy(update={"service_name": name})
    configure_logging(name, settings.log_level, settings.log_json)

    async def _main() -> None:
        runtime = Runtime(name, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stopping.set)
        structlog.contextvars.bind_contextvars(service=name)
        await main(runtime)

    asyncio.run(_main())
