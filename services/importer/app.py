"""Importer process wiring: a durable consumer of `courier.file.received`."""

from __future__ import annotations

from courier.common.events import FileReceived
from courier.common.runtime import Runtime
from courier.importer.apply import handle_file_received


async def main(runtime: Runtime) -> None:
    async def on_file(event: FileReceived) -> None:
        result = await handle_file_received(runtime.db, runtime.storage, event)
        # Published after the commit; a failure here nacks, and the redelivery
        # finds the import already done and only publishes again.
        for out in result.events:
            await runtime.bus.publish(out)

    runtime.bus.consume(FileReceived, "importer", on_file)
    await runtime.run()
