"""Importer process wiring: durable consumers of received files and of decisions, and the
timer that applies scheduled files at their feed's window."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from courier.common.events import FileReceived, ImportDecide
from courier.common.logging import get_logger
from courier.common.runtime import Runtime
from courier.common.uow import UnitOfWork
from courier.importer.apply import DATABASE_ERRORS, database_error, handle
from courier.importer.approval import decide
from courier.importer.windows import keep_applying

log = get_logger(__name__)


@contextlib.asynccontextmanager
async def keep_alive(message: Any, ack_wait: float) -> AsyncIterator[None]:
    """Tell JetStream the message is still being worked on, so a large file is not redelivered."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(ack_wait / 3)
            await message.in_progress()

    task = asyncio.create_task(beat()) if message is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def deliveries(message: Any) -> int:
    """How many times the bus has delivered this message, this time included."""
    return message.raw_message.metadata.num_delivered if message is not None else 1


def retry_delay(deliveries: int) -> float:
    """Seconds until the next try after a database fault: longer each time, so a fault
    that passes (a restart, a failover) has time to."""
    return min(2.0**deliveries, 60.0)


async def main(runtime: Runtime) -> None:
    def working() -> contextlib.AbstractAsyncContextManager[None]:
        message = runtime.bus.broker.context.get_local("message")
        return keep_alive(message, runtime.settings.ack_wait_seconds)

    def unit_of_work() -> UnitOfWork:
        return UnitOfWork(runtime.db, runtime.storage, runtime.clock, runtime.settings)

    async def on_file(event: FileReceived) -> None:
        message = runtime.bus.broker.context.get_local("message")
        tries = deliveries(message)
        try:
            async with working():
                last_try = tries >= runtime.settings.max_deliver
                await handle(event, unit_of_work(), last_try=last_try)
        except DATABASE_ERRORS as exc:
            # Nothing was applied; the file comes back after a pause, and its last try
            # records it as failed (see `import_or_fail`). Said here, as the bus's own
            # logging is off: a fault that heals leaves no other trace.
            log.warning(
                "database error; the import was rolled back and the file comes back",
                tenant=event.tenant,
                file_id=str(event.file_id),
                file_name=event.name,
                delivery=tries,
                retry_in=retry_delay(tries),
                error=database_error(exc),
            )
            if message is not None:
                await message.nack(delay=retry_delay(tries))
            raise

    async def on_decide(command: ImportDecide) -> None:
        # Waits for the feed's lock behind an import in progress: kept alive meanwhile.
        async with working():
            await decide(command, unit_of_work())

    runtime.bus.consume(FileReceived, "importer", on_file)
    runtime.bus.consume(ImportDecide, "importer-decisions", on_decide)
    await runtime.run(keep_applying(unit_of_work, runtime.settings.importer_window_tick_seconds))
