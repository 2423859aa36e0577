"""Importer process wiring: durable consumers of received files and of decisions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from courier.common.events import FileReceived, ImportDecide
from courier.common.runtime import Runtime
from courier.common.uow import UnitOfWork
from courier.importer.apply import handle
from courier.importer.approval import decide


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


async def main(runtime: Runtime) -> None:
    def working() -> contextlib.AbstractAsyncContextManager[None]:
        message = runtime.bus.broker.context.get_local("message")
        return keep_alive(message, runtime.settings.ack_wait_seconds)

    async def on_file(event: FileReceived) -> None:
        async with working():
            await handle(event, UnitOfWork(runtime.db, runtime.storage))

    async def on_decide(command: ImportDecide) -> None:
        # Waits for the feed's lock behind an import in progress: kept alive meanwhile.
        async with working():
            await decide(command, UnitOfWork(runtime.db, runtime.storage))

    runtime.bus.consume(FileReceived, "importer", on_file)
    runtime.bus.consume(ImportDecide, "importer-decisions", on_decide)
    await runtime.run()
