"""Poller process wiring: the periodic reconciliation pass."""

from __future__ import annotations

import asyncio

from courier.common.runtime import Runtime
from courier.poller.reconcile import reconcile


async def main(runtime: Runtime) -> None:
    async def _loop() -> None:
        while True:
            try:
                await reconcile(runtime.db, runtime.bus, runtime.storage)
            except Exception:
                runtime.log.exception("reconciliation pass failed")
            await asyncio.sleep(runtime.settings.poll_reconcile_seconds)

    await runtime.run(_loop())
