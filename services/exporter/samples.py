"""Sample exports for a partner's testing: the same builder and format, the period asked
for, put only in the tenant's `/outbound/test/` under a `TEST_` name.

A sample is an `exports` row marked `test`: it is not the period's export (live exports
are unique per spec and period, samples are not), it is never pushed to the partner's
own server, nobody watches for its download, and its failure pages nobody (the person
who asked sees it). No `courier.export.delivered` is sent for it: that event says a
period's export reached its partner, and a sample must never be taken for one. The
sample's id is the id of the command that asked for it, so a redelivered command makes
no second file.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from courier.common.db.engine import Database
from courier.common.db.models_exports import Export, ExportSpec
from courier.exporter.schedule import Run
from courier.exporter.spec import Destination, ExportSpecModel, PickupDestination

PREFIX = "TEST_"
DIRECTORY = "test"
# Where a sample goes, and nowhere else; placing it is the end of it.
PICKUP = PickupDestination(type="pickup", directory=DIRECTORY, confirm_download=False)


def sample_name(name: str) -> str:
    """The live file's name, marked as a test at a glance (and sorted together)."""
    return f"{PREFIX}{name}"


def destinations(export: Export, spec: ExportSpecModel) -> list[Destination]:
    """Where `export` goes: the spec's destinations, or for a sample only `/outbound/test/`."""
    return [PICKUP] if export.test else list(spec.destinations)


async def claim_sample(
    db: Database, spec_row: ExportSpec, run: Run, sample_id: uuid.UUID
) -> Export | None:
    """Insert the sample asked for as `sample_id`; None when that request made it already."""
    async with db.session() as s:
        if await s.get(Export, sample_id) is not None:
            return None
    try:
        async with db.transaction() as s:
            export = Export(
                id=sample_id,
                spec_id=spec_row.id,
                tenant_id=spec_row.tenant_id,
                period_start=run.period_start,
                period_end=run.period_end,
                scheduled_for=run.at,
                test=True,
                status="pending",
            )
            s.add(export)
    except IntegrityError:  # the same request, carried out by another replica meanwhile
        return None
    return export
