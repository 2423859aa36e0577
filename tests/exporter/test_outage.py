"""An export alert staged while no relay runs still becomes an incident once one does."""

from __future__ import annotations

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Incident
from courier.common.db.models_outbox import OutboxEvent
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.exporter.worker import Exporter
from tests.exporter.test_build import _export_for
from tests.support.services import eventually, running


async def test_build_failure_during_a_bus_outage_is_paged_when_the_bus_is_back(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant, timesheets: list
) -> None:
    await storage.put("tenants/acme/exports", b"in the way")
    export = await _export_for(db, Exporter(db, storage), tenant=tenant)
    assert export.status == "failed"
    async with db.session() as s:
        [kept] = list(await s.scalars(select(OutboxEvent)))
    assert kept.published_at is None

    # Any service's relay publishes it; the monitor turns it into an incident.
    async with running("monitor", settings):

        async def incident() -> Incident | None:
            async with db.session() as s:
                return await s.scalar(
                    select(Incident).where(Incident.kind == "export_build_failed")
                )

        found = await eventually(incident)
    assert found.details["export_id"] == str(export.id)
    assert "could not be built" in found.summary
    async with db.session() as s:
        assert (await s.get(OutboxEvent, kept.id)).published_at is not None  # type: ignore[union-attr]
