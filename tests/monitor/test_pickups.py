"""An export in the pickup area is watched until the partner downloads it: through the
exporter, the gateway (OpenSSH's sftp as the partner), NATS and the monitor."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.bus import Bus
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Incident, PickupWatch
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.console.api import create_app
from courier.exporter.schedule import Run, claim_period
from courier.exporter.worker import Exporter
from tests.exporter.conftest import DAY, make_spec, sheet
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.console import api_client, make_token
from tests.support.paging import Mailbox, body
from tests.support.paging_fixtures import CONTACT, START
from tests.support.services import at_once, eventually, running

pytestmark = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")

PATH = "/outbound/timesheets_20261102.csv"
PASSWORD = "Corr3ct-Horse-Battery"


async def _place(db: Database, storage: Storage, bus: Bus, tenant: Tenant, clock: ManualClock):  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        s.add(sheet(tenant, "E1", "Amira Ahmed"))
    spec = await make_spec(
        db,
        tenant,
        destinations=[{"type": "pickup", "collect_within": "PT1H"}],
        contacts=[{"name": "Payroll IT", "email": CONTACT}],
    )
    exporter = Exporter(db, storage, clock=clock.now)
    export = await claim_period(db, spec, Run(clock.now(), DAY, DAY))
    assert export is not None
    await exporter.process(export.id)
    return export


@pytest.fixture
async def partner(db: Database, tenant: Tenant) -> None:
    """The partner's account (the gateway reads allowlists when it starts)."""
    await provision.create_account(
        db, tenant, "acme-payroll", PASSWORD, auth_policy="password",
        allowed_cidrs=["127.0.0.1/32"],
    )  # fmt: skip


async def _watch(db: Database) -> PickupWatch | None:
    async with db.session() as s:
        return await s.scalar(select(PickupWatch))


async def _collect(settings: Settings, tmp_path: Path) -> None:
    result = await openssh_sftp(
        settings.gateway_port, "acme-payroll", [f"get {PATH} {tmp_path}/got.csv"],
        password=PASSWORD,
    )  # fmt: skip
    assert (tmp_path / "got.csv").exists(), result.stderr


async def _incident(db: Database) -> Incident | None:
    async with db.session() as s:
        return await s.scalar(select(Incident).where(Incident.kind == "export_not_collected"))


async def test_a_collected_export_raises_nothing(
    paging: Settings, db: Database, storage: Storage, bus: Bus, tenant: Tenant,
    clock: ManualClock, tmp_path: Path, partner: None,
) -> None:  # fmt: skip
    async with running("monitor", paging, clock), running("gateway", paging):
        export = await _place(db, storage, bus, tenant, clock)
        watch = await eventually(lambda: _watch(db))
        assert (watch.export_id, watch.path) == (export.id, PATH)
        assert watch.collect_by == clock.now() + timedelta(hours=1)

        await _collect(paging, tmp_path)

        async def collected() -> PickupWatch | None:
            w = await _watch(db)
            return w if w is not None and w.collected_at is not None else None

        done = await eventually(collected)
        assert done.collected_by == "acme-payroll"

        # Support sees it in the console API and the CLI.
        token = await make_token(db, "support")
        async with api_client(create_app(db, storage, paging), token) as http:
            view = (await http.get(f"/api/exports/{export.id}")).json()
        [pickup] = view["pickups"]
        assert (pickup["path"], pickup["collected_by"]) == (PATH, "acme-payroll")
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "courier"), "exports", "show", str(export.id),
            env={**os.environ, "COURIER_DATABASE_URL": paging.database_url},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out = " ".join((await proc.communicate())[0].decode().split())
        assert proc.returncode == 0, out
        assert f"{PATH}: collected by acme-payroll" in out
        clock.advance(hours=2)
        await asyncio.sleep(1)  # ten monitor passes past the deadline
    assert await _incident(db) is None
    assert (await _watch(db)).alerted_at is None  # type: ignore[union-attr]


async def test_an_uncollected_export_contacts_the_customer_and_a_late_download_resolves_it(
    paging: Settings, db: Database, storage: Storage, bus: Bus, tenant: Tenant,
    clock: ManualClock, mailbox: Mailbox, tmp_path: Path, partner: None,
) -> None:  # fmt: skip
    async with (
        running("monitor", paging, clock),
        running("notifier", paging, clock),
        running("gateway", paging),
    ):
        await _place(db, storage, bus, tenant, clock)
        await eventually(lambda: _watch(db))
        clock.advance(hours=1, minutes=1)

        incident = await eventually(lambda: _incident(db))
        assert incident.incident_class == "partner"
        assert PATH in incident.summary and "was not downloaded" in incident.summary
        mails = await eventually(
            lambda: at_once([m for m in mailbox.to(CONTACT) if "export_not_collected" in body(m)
                            or "not downloaded" in body(m)])
        )  # fmt: skip
        assert PATH in body(mails[0])

        await _collect(paging, tmp_path)

        async def resolved() -> Incident | None:
            i = await _incident(db)
            return i if i is not None and i.state == "resolved" else None

        done = await eventually(resolved)
    async with db.session() as s:
        found = await s.get(Incident, done.id)
        assert found is not None
        await s.refresh(found, ["notes"])
        assert any("downloaded by acme-payroll" in n.text for n in found.notes)
    async with db.session() as s:
        assert len(list(await s.scalars(select(Incident)))) == 1  # raised once


async def test_a_redelivered_export_is_watched_again(db: Database, tenant: Tenant) -> None:
    from courier.common.events import ExportDelivered, FileDownloaded
    from courier.monitor.pickups import on_downloaded, watch_delivery

    now = START
    event = ExportDelivered(
        export_id=uuid.uuid4(), tenant_id=tenant.id, tenant=tenant.slug, spec="payroll",
        destination="pickup:/outbound", name="t.csv", sha256="0" * 64, rows=1,
        path="/outbound/t.csv", collect_by=now + timedelta(hours=1),
    )  # fmt: skip
    assert await watch_delivery(db, event, now)
    assert not await watch_delivery(db, event, now)  # the same event again
    download = FileDownloaded(
        tenant_id=tenant.id, tenant=tenant.slug, path="/outbound/t.csv", size=1, username="p"
    )
    assert await on_downloaded(db, download, now + timedelta(minutes=5)) == 1
    assert (await _watch(db)).collected_at is not None  # type: ignore[union-attr]

    # `courier exports redeliver`: the partner lost the file; a new round, a new deadline.
    again = event.model_copy(update={"collect_by": now + timedelta(days=1, hours=1)})
    assert await watch_delivery(db, again, now + timedelta(days=1))
    watch = await _watch(db)
    assert watch is not None and watch.collected_at is None
    assert watch.collect_by == now + timedelta(days=1, hours=1)
