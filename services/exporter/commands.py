"""What people ask of the exporter: `courier.export.run` and `courier.export.redeliver`
commands (from the CLI, through the outbox), carried out with the exporter's own steps.

Each handler only changes the export's row (a new period's export, a new delivery
round) and names the export for the service's workers, which build and deliver it as
they do a scheduled one, retrying until its window closes. A redelivered command
changes nothing twice: a period has one export, a sample (`test`) has the id of the
request that asked for it, and a round started since the request answers it. A command
that cannot be carried out is logged, never raised.
"""

from __future__ import annotations

import uuid

from courier.common.db.models_exports import Export, ExportSpec
from courier.common.events import ExportRedeliver, ExportRun
from courier.common.export_requests import round_since
from courier.common.logging import get_logger
from courier.exporter.worker import Exporter

log = get_logger(__name__)


async def run(cmd: ExportRun, exporter: Exporter) -> uuid.UUID | None:
    """Create the export of the period holding `cmd.day`; its id, None if nothing to do."""
    async with exporter.db.session() as s:
        spec_row = await s.get(ExportSpec, cmd.spec_id)
    if spec_row is None or spec_row.tenant_id != cmd.tenant_id:
        log.warning("export run refused: no such spec", spec_id=str(cmd.spec_id), by=cmd.by)
        return None
    if cmd.test:
        return await _sample(cmd, spec_row, exporter)
    export = await exporter.run_now(spec_row, cmd.day)
    if export is None:
        # This command made it before it was redelivered, or the schedule or another
        # person got there first: either way that export is the answer.
        log.info("export run: the period is exported already", spec=spec_row.name, by=cmd.by)
        return None
    log.info("export run requested", spec=spec_row.name, export_id=str(export.id), by=cmd.by)
    return export.id


async def _sample(cmd: ExportRun, spec_row: ExportSpec, exporter: Exporter) -> uuid.UUID | None:
    export = await exporter.run_sample(spec_row, cmd.day, cmd.event_id)
    if export is None:
        log.info("sample export: made already for this request", spec=spec_row.name, by=cmd.by)
        return None
    log.info("sample export requested", spec=spec_row.name, export_id=str(export.id), by=cmd.by)
    return export.id


async def redeliver(cmd: ExportRedeliver, exporter: Exporter) -> uuid.UUID | None:
    """Start a new delivery round of a built export; its id, None if nothing to do."""
    async with exporter.db.session() as s:
        export = await s.get(Export, cmd.export_id)
    if export is None or export.tenant_id != cmd.tenant_id:
        log.warning("redelivery refused: no such export", export_id=str(cmd.export_id))
        return None
    if round_since(export, cmd):
        log.info("redelivery already under way", export_id=str(export.id), by=cmd.by)
        return None
    reopened = await exporter.reopen_delivery(export.id)
    if reopened is None or reopened.storage_key is None:
        log.warning("redelivery refused: never built", export_id=str(export.id), by=cmd.by)
        return None
    log.info("redelivery requested", export_id=str(export.id), by=cmd.by)
    return export.id
