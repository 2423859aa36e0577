"""Export runs and redeliveries, as people ask for them: checked, then sent as a command.

The exporter owns exports. `request_run` and `request_redeliver` refuse at once what
it could not do (so the person hears why) and stage a `courier.export.run` or
`courier.export.redeliver` command in the caller's transaction; the exporter carries
it out and the export's row shows the outcome.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, ExportSpec
from courier.common.events import ExportRedeliver, ExportRun
from courier.common.outbox import stage


class ExportRefused(Exception):
    pass


def due_day(spec_row: ExportSpec, now: datetime) -> date:
    """A day of the period due now: yesterday, in the spec's time zone (else the tenant's)."""
    zone = spec_row.spec.get("schedule", {}).get("timezone") or spec_row.tenant.timezone
    tz = ZoneInfo(zone or "UTC")
    return now.astimezone(tz).date() - timedelta(days=1)


async def export_holding(session: AsyncSession, spec_id: uuid.UUID, day: date) -> Export | None:
    """The spec's export whose period holds `day`, if that period was exported (samples
    for testing are not the period's export)."""
    return await session.scalar(
        select(Export).where(
            Export.spec_id == spec_id,
            Export.period_start <= day,
            Export.period_end >= day,
            Export.test.is_(False),
        )
    )


async def request_run(
    session: AsyncSession,
    tenant: str,
    spec: str,
    day: date | None,
    by: str,
    now: datetime,
    *,
    test: bool = False,
) -> ExportRun:
    """Stage a run of the period holding `day` (default: the one due now); with `test`, a
    sample of it for the partner's testing, which any period may have any number of."""
    spec_row = await session.scalar(
        select(ExportSpec)
        .join(Tenant, Tenant.id == ExportSpec.tenant_id)
        .where(Tenant.slug == tenant, ExportSpec.name == spec)
    )
    if spec_row is None:
        raise ExportRefused(f"no export spec {spec!r} for tenant {tenant!r}")
    day = day or due_day(spec_row, now)
    if not test and (done := await export_holding(session, spec_row.id, day)) is not None:
        raise ExportRefused(
            f"that period ({done.period_start}..{done.period_end}) was exported already: "
            f"export {done.id} is {done.status}; see `courier exports show {done.id}`, "
            f"or `courier exports redeliver {done.id}`"
        )
    command = ExportRun(
        spec_id=spec_row.id, tenant_id=spec_row.tenant_id, day=day, by=by, test=test
    )
    stage(session, command)
    return command


async def request_redeliver(
    session: AsyncSession, export_id: uuid.UUID, by: str
) -> ExportRedeliver:
    """Stage a new delivery round of a built export."""
    export = await session.get(Export, export_id)
    if export is None:
        raise ExportRefused(f"no export {export_id}")
    if export.storage_key is None:
        raise ExportRefused(f"export {export_id} was never built ({export.status})")
    command = ExportRedeliver(export_id=export.id, tenant_id=export.tenant_id, by=by)
    stage(session, command)
    return command


def round_since(export: Export, command: ExportRedeliver) -> bool:
    """Whether a delivery round started after `command` was asked (which answers it)."""
    started = export.delivery_started_at
    return started is not None and started >= command.occurred_at
