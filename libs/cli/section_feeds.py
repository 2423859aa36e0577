"""Applies the `feeds` section."""

from __future__ import annotations

from courier.cli import provision
from courier.cli.specs import Item, section, validate_items
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.importer.spec import FeedSpec


@section("feeds")
async def apply_feeds(db: Database, tenant: Tenant, items: list[Item]) -> list[str]:
    specs: list[FeedSpec] = validate_items(FeedSpec, items, "feeds")
    for spec in specs:
        await provision.upsert_feed(
            db, tenant, spec.name, spec.kind, spec.pattern, spec.model_dump(mode="json")
        )
    return [f"feed {tenant.slug}/{s.name} ({s.kind}, {s.pattern}) applied" for s in specs]
