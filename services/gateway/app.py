"""Gateway process wiring."""

from __future__ import annotations

import asyncio

from courier.common.announce import announce_pending
from courier.common.runtime import Runtime
from courier.gateway.server import GatewayContext, start


async def main(runtime: Runtime) -> None:
    ctx = GatewayContext(runtime.settings, runtime.db, runtime.bus, runtime.storage)
    server = await start(ctx)
    runtime.log.info(
        "sftp listening", host=runtime.settings.gateway_host, port=runtime.settings.gateway_port
    )

    async def _serve() -> None:
        try:
            await server.wait_closed()
        finally:
            server.close()

    async def _catch_up() -> None:
        # Uploads finished while the bus was down are announced once it is back.
        await asyncio.sleep(1)
        await announce_pending(runtime.db, runtime.bus)

    try:
        await runtime.run(_serve(), _catch_up())
    finally:
        server.close()
