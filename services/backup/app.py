"""Backup process wiring: durable consumers of the file events and the reconciliation loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from courier.backup.copier import Copier
from courier.backup.handlers import on_export_delivered, on_file_received, on_import_result
from courier.backup.reconcile import leased_pass, measure
from courier.backup.retention import retention_loop
from courier.backup.tuning import BackupSettings
from courier.common.events import (
    ExportDelivered,
    FileReceived,
    FileRejected,
    ImportCompleted,
    ImportFailed,
)
from courier.common.regions import Regions
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.common.uow import UnitOfWork

# How often the backlog gauges are read from the ledger (cheap: one grouped query).
MEASURE_SECONDS = 15.0


async def main(runtime: Runtime, settings: BackupSettings | None = None) -> None:
    settings = settings or BackupSettings()
    regions = Regions(runtime.settings)
    copier = Copier(regions, settings)

    def uow() -> UnitOfWork:
        return UnitOfWork(runtime.db, runtime.storage)

    async def on_received(event: FileReceived) -> None:
        await on_file_received(event, uow(), copier)

    async def on_completed(event: ImportCompleted) -> None:
        await on_import_result(event, uow(), copier)

    async def on_failed(event: ImportFailed) -> None:
        await on_import_result(event, uow(), copier)

    async def on_rejected(event: FileRejected) -> None:
        await on_import_result(event, uow(), copier)

    async def on_delivered(event: ExportDelivered) -> None:
        await on_export_delivered(event, uow(), copier)

    runtime.bus.consume(FileReceived, "backup-received", on_received)
    runtime.bus.consume(ImportCompleted, "backup-import-completed", on_completed)
    runtime.bus.consume(ImportFailed, "backup-import-failed", on_failed)
    runtime.bus.consume(FileRejected, "backup-file-rejected", on_rejected)
    runtime.bus.consume(ExportDelivered, "backup-export-delivered", on_delivered)

    every = timedelta(seconds=settings.reconcile_seconds)

    async def _reconcile_loop() -> None:
        while True:
            try:
                await uninterrupted(leased_pass(runtime.db, uow(), copier, runtime.instance, every))
            except Exception:
                runtime.log.exception("backup reconciliation pass failed")
            # Ask again well before `every`: another replica's pass may be the one that ran.
            await asyncio.sleep(min(settings.reconcile_seconds, MEASURE_SECONDS))

    async def _measure_loop() -> None:
        while True:
            try:
                await measure(runtime.db, regions.names())
            except Exception:
                runtime.log.exception("backup backlog not measured")
            await asyncio.sleep(MEASURE_SECONDS)

    await runtime.run(_reconcile_loop(), _measure_loop(), retention_loop(runtime, settings))
