"""Runs and redeliveries people ask for reach the exporter as commands, and are carried
out once: also when the bus or the exporter was down when they asked."""

from __future__ import annotations

import asyncio

import pytest

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, Timesheet
from courier.common.events import ExportRedeliver, ExportRun
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.exporter import commands
from courier.exporter.worker import Exporter
from tests.exporter.conftest import DAY, exports, make_spec
from tests.support.cli import bus_down, cli_env, courier
from tests.support.services import eventually, running
from tests.support.staged import staged

pytestmark = pytest.mark.usefixtures("quick_exporter")


async def test_a_redelivery_asked_with_the_bus_down_is_queued_and_delivered_once_later(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
) -> None:
    spec = await make_spec(db, tenant)
    exporter = Exporter(db, storage)
    export = await exporter.run_now(spec, DAY)
    assert export is not None and await exporter.process(export.id) == "delivered"
    [placed] = await storage.list("tenants/acme/outbound")
    await storage.delete(placed.key)  # the partner lost it

    code, out = await courier(bus_down(settings), "exports", "redeliver", str(export.id))
    assert code == 0, out
    assert f"redelivery of export {export.id} queued: the bus is not reachable" in out
    code, out = await courier(cli_env(settings), "exports", "show", str(export.id))
    assert out.count("pickup:/outbound delivered") == 1  # nothing happened yet

    async def delivered_again() -> Export | None:
        [row] = await exports(db)
        return row if row.status == "delivered" and len(row.attempts) == 2 else None

    async with running("exporter", settings):
        await eventually(delivered_again)
        await asyncio.sleep(1)  # a few passes of the exporter, in case it went again
    # The command was answered: a restart delivers nothing more, and so does the same
    # command delivered again after the bus's dedupe window (handled here directly).
    async with running("exporter", settings):
        [command] = await staged(db, ExportRedeliver.subject)
        assert isinstance(command, ExportRedeliver)
        assert await commands.redeliver(command, Exporter(db, storage)) is None
        await asyncio.sleep(1)
    [done] = await exports(db)
    assert [(a.destination, a.outcome) for a in done.attempts] == [
        ("pickup:/outbound", "delivered"),
        ("pickup:/outbound", "delivered"),
    ]
    assert [o.key for o in await storage.list("tenants/acme/outbound")] == [placed.key]


async def test_a_run_of_a_period_delivered_twice_makes_one_export(
    db: Database, storage: Storage, tenant: Tenant, timesheets: list[Timesheet]
) -> None:
    spec = await make_spec(db, tenant)
    command = ExportRun(spec_id=spec.id, tenant_id=tenant.id, day=DAY, by="ops")
    exporter = Exporter(db, storage)
    made = await commands.run(command, exporter)
    assert made is not None
    assert await commands.run(command, exporter) is None
    [export] = await exports(db)
    assert (export.id, export.period_start, export.period_end) == (made, DAY, DAY)


async def test_run_and_redeliver_refuse_what_the_exporter_could_not_do(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant
) -> None:
    spec = await make_spec(db, tenant)
    env = cli_env(settings)
    code, out = await courier(env, "exports", "run", "payroll", "--tenant", "other")
    assert code == 1 and "no export spec 'payroll' for tenant 'other'" in out
    export = await Exporter(db, storage).run_now(spec, DAY)
    assert export is not None
    code, out = await courier(env, "exports", "run", "payroll", "--tenant", "acme",
                              "--period", str(DAY))  # fmt: skip
    assert code == 1 and f"was exported already: export {export.id} is pending" in out
    code, out = await courier(env, "exports", "redeliver", str(export.id))
    assert code == 1 and f"export {export.id} was never built (pending)" in out
    assert await staged(db) == []
