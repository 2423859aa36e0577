"""Gateway process wiring."""

from __future__ import annotations

import asyncio

from courier.common.runtime import Runtime
from courier.gateway.audit import AuditLog
from courier.gateway.bans import Guard
from courier.gateway.expiry import keep_checking
from courier.gateway.server import GatewayContext, start


async def main(runtime: Runtime) -> None:
    settings = runtime.settings
    guard = Guard(settings, runtime.db)
    audit = AuditLog(runtime.db)
    ctx = GatewayContext(settings, runtime.db, runtime.bus, runtime.storage, guard, audit)
    server = await start(ctx)
    runtime.log.info("sftp listening", host=settings.gateway_host, port=settings.gateway_port)

    async def _serve() -> None:
        try:
            await server.serve_forever()
        finally:
            server.close()

    try:
        await runtime.run(
            _serve(),
            guard.keep_fresh(),
            audit.run(),
            keep_checking(runtime.db, runtime.bus, settings.gateway_password_check_seconds),
        )
    finally:
        server.close()
        if ctx.tasks:
            await asyncio.wait(ctx.tasks, timeout=5)
        await audit.flush()
