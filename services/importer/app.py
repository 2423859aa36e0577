"""Importer process wiring: a durable consumer of `courier.file.received`, and approvals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from courier.common.events import FileReceived
from courier.common.outbox import flush_quietly
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.importer.apply import handle_file_received
from courier.importer.approval import carry_out_requests

DECISION_POLL_SECONDS = 1.0


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
    async def on_file(event: FileReceived) -> None:
        message = runtime.bus.broker.context.get_local("message")
        async with keep_alive(message, runtime.settings.ack_wait_seconds):
            result = await handle_file_received(runtime.db, runtime.storage, event)
        # Published after the commit; a failure here nacks, and the redelivery
        # finds the import already done and only publishes again.
        for out in result.events:
            await runtime.bus.publish(out)

    async def decisions() -> None:
        """Approvals and rejections recorded in the console are carried out here."""
        while not runtime.stopping.is_set():
            if await uninterrupted(carry_out_requests(runtime.db, runtime.storage)):
                await flush_quietly(runtime.db, runtime.bus.publish)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runtime.stopping.wait(), DECISION_POLL_SECONDS)

    runtime.bus.consume(FileReceived, "importer", on_file)
    await runtime.run(decisions())
