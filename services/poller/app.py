"""Poller process wiring: source polling and the periodic reconciliation pass."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from courier.common.db.models_sources import Source
from courier.common.lease import hold
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.poller.fetch import (
    Observations,
    due,
    poll_source,
    record_outcome,
    utc_now,
)
from courier.poller.metrics import POLL_ERRORS
from courier.poller.reconcile import reconcile

TICK_SECONDS = 1.0
# Renewed while a poll runs: a poller that dies frees its sources within a minute.
LEASE_TTL = timedelta(minutes=1)


async def poll_due_sources(runtime: Runtime, observations: Observations, owner: str) -> None:
    now = utc_now()
    async with runtime.db.session() as session:
        sources = (await session.scalars(select(Source).where(Source.enabled.is_(True)))).all()
    for source in sources:
        if not due(source, now):
            continue
        async with hold(runtime.db, Source, source.id, owner, LEASE_TTL) as lease:
            if lease is None:
                continue
            error: str | None = None
            try:
                await poll_source(runtime.db, runtime.storage, source, observations, owner)
            except Exception as exc:  # one bad source must not stop the others
                error = f"{type(exc).__name__}: {exc}"
                POLL_ERRORS.labels(source=source.name, reason="poll").inc()
                runtime.log.warning("poll failed", source=source.name, error=error)
            await record_outcome(runtime.db, source, utc_now(), error)


async def main(runtime: Runtime) -> None:
    owner = runtime.instance
    observations = Observations()

    async def _poll_loop() -> None:
        while True:
            try:
                await uninterrupted(poll_due_sources(runtime, observations, owner))
            except Exception:
                runtime.log.exception("polling pass failed")
            await asyncio.sleep(TICK_SECONDS)

    async def _reconcile_loop() -> None:
        while True:
            try:
                await uninterrupted(reconcile(runtime.db, runtime.storage))
            except Exception:
                runtime.log.exception("reconciliation pass failed")
            await asyncio.sleep(runtime.settings.poll_reconcile_seconds)

    await runtime.run(_poll_loop(), _reconcile_loop())
