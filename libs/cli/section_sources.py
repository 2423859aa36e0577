"""Applies the `sources` section (vendor SFTP servers the poller pulls from)."""

from __future__ import annotations

from sqlalchemy import select

from courier.cli.specs import Item, section, validate_items
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_sources import Source
from courier.poller.spec import SourceSpec


@section("sources")
async def apply_sources(db: Database, tenant: Tenant, items: list[Item]) -> list[str]:
    specs: list[SourceSpec] = validate_items(SourceSpec, items, "sources")
    async with db.transaction() as session:
        for spec in specs:
            row = await session.scalar(
                select(Source).where(Source.tenant_id == tenant.id, Source.name == spec.name)
            )
            data = spec.model_dump(mode="json")
            if row is None:
                session.add(
                    Source(tenant_id=tenant.id, name=spec.name, spec=data, enabled=spec.enabled)
                )
            else:
                row.spec, row.enabled = data, spec.enabled
    return [f"source {tenant.slug}/{s.name} ({s.remote.label}) applied" for s in specs]
