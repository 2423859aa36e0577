"""Exporter process wiring: a loop that schedules due exports and works on them, and
durable consumers of the runs and redeliveries people ask for."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from pydantic_settings import BaseSettings, SettingsConfigDict

from courier.common.events import ExportRedeliver, ExportRun
from courier.common.runtime import Runtime
from courier.common.tasks import uninterrupted
from courier.exporter import commands
from courier.exporter.worker import Exporter, Tuning


class ExporterSettings(BaseSettings):
    """`COURIER_EXPORTER_*`: how often to look for work, lease and retry pacing."""

    model_config = SettingsConfigDict(env_prefix="COURIER_EXPORTER_", extra="ignore")

    tick_seconds: float = 15.0
    lease_seconds: float = 60.0
    retry_min_seconds: float = 2.0
    retry_max_seconds: float = 300.0


async def main(runtime: Runtime) -> None:
    conf = ExporterSettings()
    exporter = Exporter(
        runtime.db,
        runtime.storage,
        owner=runtime.instance,
        pgp_passphrase=runtime.settings.pgp_passphrase,
        tuning=Tuning(
            lease=timedelta(seconds=conf.lease_seconds),
            retry_min_seconds=conf.retry_min_seconds,
            retry_max_seconds=conf.retry_max_seconds,
        ),
    )
    working: dict[uuid.UUID, asyncio.Task[object]] = {}

    async def _loop() -> None:
        try:
            while True:
                await uninterrupted(_pass())
                await asyncio.sleep(conf.tick_seconds)
        finally:
            # Stopping mid-export releases its lease so another replica takes it over.
            for task in list(working.values()):
                task.cancel()
            await asyncio.gather(*working.values(), return_exceptions=True)

    async def _pass() -> None:
        try:
            await exporter.schedule()
            for export_id in await exporter.runnable():
                _work_on(export_id)
        except Exception:
            runtime.log.exception("export pass failed")

    def _work_on(export_id: uuid.UUID) -> None:
        if export_id not in working:
            task = asyncio.create_task(exporter.process(export_id))
            working[export_id] = task
            task.add_done_callback(lambda t, i=export_id: _done(i, t))

    def _done(export_id: uuid.UUID, task: asyncio.Task[object]) -> None:
        working.pop(export_id, None)
        if not task.cancelled() and task.exception() is not None:
            runtime.log.error(
                "export processing failed", export_id=str(export_id), error=str(task.exception())
            )

    async def on_run(cmd: ExportRun) -> None:
        if (export_id := await commands.run(cmd, exporter)) is not None:
            _work_on(export_id)

    async def on_redeliver(cmd: ExportRedeliver) -> None:
        if (export_id := await commands.redeliver(cmd, exporter)) is not None:
            _work_on(export_id)

    runtime.bus.consume(ExportRun, "exporter-runs", on_run)
    runtime.bus.consume(ExportRedeliver, "exporter-redeliveries", on_redeliver)
    await runtime.run(_loop())
