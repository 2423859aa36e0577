"""Work a service stop must not cut in half."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
STEP_GRACE_SECONDS = 10.0


async def uninterrupted(work: Awaitable[T], grace: float = STEP_GRACE_SECONDS) -> T:
    """Await `work`; if the caller is cancelled meanwhile, let `work` finish first.

    A database call cut mid-way can leave its connection waiting forever (SQLite's
    driver opening a connection, say), and with it the service's shutdown. The
    cancellation goes on once `work` is done, or after `grace` seconds at most.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
        elif not task.cancelled():
            task.exception()  # seen: its outcome no longer matters
        raise
