"""Applies the `exports` section."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from courier.cli.specs import Item, section, validate_items
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import ExportSpec
from courier.exporter.spec import ExportSpecModel


async def upsert_export_spec(
    db: Database, tenant: Tenant, spec: ExportSpecModel, now: datetime | None = None
) -> ExportSpec:
    """Create or replace a spec; a new spec's schedule starts now (no back-filling)."""
    async with db.transaction() as session:
        row = await session.scalar(
            select(ExportSpec).where(
                ExportSpec.tenant_id == tenant.id, ExportSpec.name == spec.name
            )
        )
        data = spec.model_dump(mode="json")
        if row is None:
            row = ExportSpec(
                tenant_id=tenant.id,
                name=spec.name,
                kind=spec.kind,
                spec=data,
                enabled=spec.enabled,
                created_at=now or utcnow(),
            )
            session.add(row)
        else:
            row.kind, row.spec, row.enabled = spec.kind, data, spec.enabled
    return row


@section("exports")
async def apply_exports(db: Database, tenant: Tenant, items: list[Item]) -> list[str]:
    specs: list[ExportSpecModel] = validate_items(ExportSpecModel, items, "exports")
    for spec in specs:
        await upsert_export_spec(db, tenant, spec)
    return [
        f"export {tenant.slug}/{s.name} ({s.kind}, {s.schedule.cron} "
        f"{s.schedule.timezone or tenant.timezone}"
        f"{', business days' if s.schedule.days == 'business' else ''}, "
        f"to {', '.join(d.label for d in s.destinations)}"
        f"{f', encrypted to {s.encrypt.to}' if s.encrypt else ''}) applied"
        for s in specs
    ]
