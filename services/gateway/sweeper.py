"""Removes what a crash mid-upload leaves in storage.

An upload writes to a temporary object that only its close turns into the file (or
throws away). A gateway killed mid-upload never closes it: the temporary file of a
local store, or the unfinished multipart upload of an S3 bucket, stays. Nothing ever
shows it to a partner, but it takes space (S3 bills parts) until swept. Every replica
sweeps; an object already gone is simply not counted.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from courier.common.clock import Clock
from courier.common.logging import get_logger
from courier.common.storage import Storage
from courier.gateway.metrics import SFTP_SWEPT_TEMPORARY_OBJECTS

log = get_logger(__name__)


async def sweep(storage: Storage, max_age: timedelta, clock: Clock) -> int:
    """Remove temporary objects untouched for `max_age`; how many were removed."""
    removed = await storage.sweep_temporary(clock.now() - max_age)
    if removed:
        SFTP_SWEPT_TEMPORARY_OBJECTS.inc(removed)
        log.warning("temporary upload objects swept", removed=removed)
    return removed


async def keep_sweeping(storage: Storage, every: float, max_age: timedelta, clock: Clock) -> None:
    """Sweep now and every `every` seconds; a failed pass is logged and tried again."""
    while True:
        try:
            await sweep(storage, max_age, clock)
        except Exception as exc:
            log.warning("temporary upload objects not swept", error=str(exc))
        await asyncio.sleep(every)
