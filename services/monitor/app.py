"""Monitor process wiring: consumers of the events that become incidents, and the loop
that closes windows and fires SLA timers by the runtime's clock.

Whatever writes notices stages their `NoticesRaised` event in the same transaction;
the commit wakes this process's outbox relay, so the notifier pages at once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from courier.common.db.engine import is_sqlite
from courier.common.db.models_incidents import SlaPolicy
from courier.common.events import (
    AlertRaised,
    ExportDelivered,
    FileDownloaded,
    FileRejected,
    ImportCompleted,
    ImportFailed,
    IncidentAct,
)
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.common.uow import UnitOfWork
from courier.monitor import actions, expectations, heartbeats, pickups, signals, sla
from courier.monitor.incidents import publish_open_counts, release_deferred_pages

PLAN_EVERY = timedelta(minutes=5)
# The open-incidents gauge is read from the table this often (wall time).
COUNT_EVERY_SECONDS = 30.0
# Batches of closing windows worked at once: one prepares rows while another waits on
# PostgreSQL. SQLite has one writer, so it gets one.
CLOSE_WORKERS = 3


async def tick(runtime: Runtime, now: datetime, policy: SlaPolicy) -> None:
    db, settings = runtime.db, runtime.settings

    # Each batch of closed windows reaches the notifier as soon as it is committed: the
    # commit that stages its notices wakes the relay.
    await expectations.close_due_windows(
        db, now, policy, workers=1 if is_sqlite(db.url) else CLOSE_WORKERS
    )
    await expectations.warn_due_windows(db, now)
    await sla.fire_due_timers(db, now)
    await pickups.check_collections(db, now, policy)
    async with db.transaction() as session:
        await release_deferred_pages(session, now)
    await heartbeats.check_heartbeats(
        db, now, timedelta(seconds=settings.heartbeat_timeout_seconds), policy
    )


async def watch(runtime: Runtime, policy: SlaPolicy) -> None:
    horizon = timedelta(hours=runtime.settings.monitor_horizon_hours)
    planned: datetime | None = None
    loop = asyncio.get_running_loop()
    counted_at = -COUNT_EVERY_SECONDS
    while True:
        now = runtime.clock.now()
        try:
            # Deadlines first: laying out tomorrow's windows must not delay today's pages.
            if planned is not None:
                await uninterrupted(tick(runtime, now, policy))
            if planned is None or now - planned >= PLAN_EVERY or now < planned:
                await uninterrupted(expectations.plan_windows(runtime.db, now, horizon))
                planned = now
            if loop.time() >= counted_at + COUNT_EVERY_SECONDS:
                await uninterrupted(publish_open_counts(runtime.db))
                counted_at = loop.time()
        except Exception as exc:  # a database blip must not stop the watch
            runtime.log.exception("monitor pass failed", error=str(exc))
        await asyncio.sleep(runtime.settings.monitor_tick_seconds)


async def main(runtime: Runtime) -> None:
    db, bus, policy = runtime.db, runtime.bus, SlaPolicy.from_settings(runtime.settings)

    # The importer names the feed that took each file: what satisfies a window.
    async def on_imported(event: ImportCompleted) -> None:
        await expectations.on_file_arrived(db, event, runtime.clock.now())

    async def on_rejected(event: FileRejected) -> None:
        await expectations.on_file_arrived(db, event, runtime.clock.now())
        await signals.on_file_rejected(db, event, runtime.clock.now(), policy)

    async def on_failed(event: ImportFailed) -> None:
        await expectations.on_file_arrived(db, event, runtime.clock.now())
        await signals.on_import_failed(db, event, runtime.clock.now(), policy)

    async def on_alert(event: AlertRaised) -> None:
        await signals.on_alert(db, event, runtime.clock.now(), policy)

    async def on_delivered(event: ExportDelivered) -> None:
        await signals.on_export_delivered(db, event, runtime.clock.now())
        await pickups.watch_delivery(db, event, runtime.clock.now())

    async def on_downloaded(event: FileDownloaded) -> None:
        await pickups.on_downloaded(db, event, runtime.clock.now())

    async def on_advisory(advisory: dict[str, Any]) -> None:
        message = None
        if advisory.get("stream") and advisory.get("stream_seq"):
            message = await bus.fetch_message(advisory["stream"], int(advisory["stream_seq"]))
        await signals.on_max_deliveries(db, advisory, message, runtime.clock.now(), policy)

    bus.consume(ImportCompleted, "monitor-imports", on_imported)
    bus.consume(FileRejected, "monitor-rejected", on_rejected)
    bus.consume(ImportFailed, "monitor-import-failed", on_failed)
    bus.consume(AlertRaised, "monitor-alerts", on_alert)
    bus.consume(ExportDelivered, "monitor-exports", on_delivered)
    bus.consume(FileDownloaded, "monitor-downloads", on_downloaded)
    bus.consume(
        IncidentAct,
        "monitor-incident-actions",
        lambda cmd: actions.act(cmd, UnitOfWork(db, runtime.storage), policy),
    )
    bus.consume_advisories("monitor-advisories", on_advisory)
    await runtime.run(watch(runtime, policy))
