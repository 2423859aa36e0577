"""The vendor's SFTP server (a real OpenSSH sshd) is down: an export due to it and a source
polled from it.

The export is retried within its delivery window, then alerted once: one incident, one
page, one e-mail. When the vendor is back, a redelivery puts exactly one file there. The
source shows as failing (`courier sources show`) while the server is down, and recovers
by itself when it returns: the file that waited on the vendor's side is imported once.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from courier.cli.section_exports import upsert_export_spec
from courier.common import export_requests
from courier.common.clock import ManualClock
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.db.models_exports import Export, Timesheet
from courier.common.db.models_incidents import Incident, Notification
from courier.common.db.models_sources import Source
from courier.common.settings import Settings
from courier.exporter.spec import ExportSpecModel
from courier.notifier.rota import Rota
from courier.poller.spec import SourceSpec
from tests.support.cli import cli_env, courier_run
from tests.support.fixtures_data import leave_csv
from tests.support.paging import Mailbox, Sns
from tests.support.paging_fixtures import (  # noqa: F401
    ANA,
    BEN,
    CAI,
    CONTACT,
    clock,
    mailbox,
    paging,
    rota,
    sns,
    sns_server,
)
from tests.support.services import at_once, eventually, running
from tests.support.sshd import Sshd

pytestmark = pytest.mark.timeout(240)

DAY = date(2026, 11, 2)


async def _export_to(db: Database, tenant: Tenant, sshd: Sshd) -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    async with db.transaction() as s:
        s.add(
            Timesheet(
                tenant_id=tenant.id, employee_id="E1", employee_name="Amira Ahmed",
                work_date=DAY, start_at=start, end_at=start + timedelta(hours=8),
                break_minutes=30, hours=Decimal("7.50"), location="Leeds Central",
                cost_centre="CC-100", approval="approved",
            )
        )  # fmt: skip
    spec = ExportSpecModel.model_validate(
        {
            "name": "payroll",
            "kind": "timesheets",
            "schedule": {"cron": "0 6 * * *", "timezone": "Europe/London"},
            "period": "previous_day",
            "columns": [
                {"field": "employee_id", "header": "Employee"},
                {"field": "hours", "header": "Hours"},
            ],
            "file_name": "timesheets_{start:%Y%m%d}.csv",
            "delivery_window": "PT4S",
            "contacts": [{"name": "Payroll IT", "email": CONTACT}],
            "destinations": [
                {
                    "type": "sftp",
                    "host": "127.0.0.1",
                    "port": sshd.port,
                    "user": sshd.user,
                    "private_key": f"file:{sshd.client_key_path}",
                    "host_key_sha256": sshd.host_fingerprint(),
                    "directory": "incoming",
                    "connect_timeout": 2,
                }
            ],
        }
    )
    await upsert_export_spec(db, tenant, spec)


async def _source_from(db: Database, tenant: Tenant, sshd: Sshd) -> None:
    spec = SourceSpec.model_validate(
        {
            "name": "payroll-vendor",
            "pattern": "leave_*.csv",
            "directory": str(sshd.home / "outgoing"),
            "min_age_seconds": 0,
            "interval_seconds": 5,
            "remote": {
                "host": "127.0.0.1",
                "port": sshd.port,
                "user": sshd.user,
                "private_key": f"file:{sshd.client_key_path}",
                "host_key_sha256": sshd.host_fingerprint(),
                "connect_timeout": 2,
            },
        }
    )
    async with db.transaction() as s:
        s.add(Source(tenant_id=tenant.id, name=spec.name, spec=spec.model_dump(mode="json")))


async def _source_state(env: dict[str, str]) -> dict[str, Any]:
    shown = await courier_run(env, "sources", "show", "payroll-vendor", "--json")
    assert shown.code == 0, shown.stderr
    return dict(json.loads(shown.stdout))


async def _export(db: Database) -> Export | None:
    async with db.session() as s:
        return await s.scalar(select(Export))


async def test_an_export_to_a_vendor_that_is_down_is_alerted_once_and_delivered_once_after(
    paging: Settings,  # noqa: F811
    db: Database,
    tenant: Tenant,
    leave_feed: None,
    rota: Rota,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns: Sns,  # noqa: F811
    mailbox: Mailbox,  # noqa: F811
    sshd: Sshd,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (sshd.home / "incoming").mkdir()
    (sshd.home / "outgoing").mkdir()
    await _export_to(db, tenant, sshd)
    await _source_from(db, tenant, sshd)
    monkeypatch.setenv("COURIER_EXPORTER_TICK_SECONDS", "0.2")
    monkeypatch.setenv("COURIER_EXPORTER_RETRY_MIN_SECONDS", "0.5")
    monkeypatch.setenv("COURIER_EXPORTER_RETRY_MAX_SECONDS", "1")
    env = cli_env(paging)
    sshd.stop()
    waiting = sshd.home / "outgoing" / "leave_20261102.csv"
    waiting.write_bytes(leave_csv("E9,annual,16.00,2026-11-02"))

    async with (
        running("importer", paging),
        running("exporter", paging),
        running("monitor", paging, clock),
        running("notifier", paging, clock),
    ):
        # What `courier exports run payroll --tenant acme --period 2026-11-02` sends.
        async with db.transaction() as s:
            await export_requests.request_run(s, "acme", "payroll", DAY, "ops", utcnow())

        async def given_up() -> Export | None:
            export = await _export(db)
            return export if export is not None and export.status == "undeliverable" else None

        export = await eventually(given_up, within=30)
        # Retried within its window, every attempt refused by the closed port.
        assert len(export.attempts) >= 2
        assert all("connection refused" in (a.error or "") for a in export.attempts)
        pages = await eventually(lambda: at_once(sns.to(ANA)), within=30)
        mails = await eventually(lambda: at_once(mailbox.to(CONTACT)), within=30)

        async with running("poller", paging):
            await eventually(lambda: _source_failing(db, True), within=30)
            # The source shows the outage to an operator.
            failing = await _source_state(env)
            assert failing["failing_since"] is not None, failing
            assert "connection refused" in failing["last_error"]

            sshd.start()
            # What `courier exports redeliver ID` sends.
            async with db.transaction() as s:
                await export_requests.request_redeliver(s, export.id, "ops")

            async def delivered() -> Export | None:
                export = await _export(db)
                return export if export is not None and export.status == "delivered" else None

            await eventually(delivered, within=60)

            await eventually(lambda: _source_failing(db, False), within=60)

            async def imported() -> Import | None:
                async with db.session() as s:
                    imp = await s.scalar(select(Import).where(Import.file_name == waiting.name))
                return imp if imp is not None and imp.finished_at is not None else None

            imp = await eventually(imported, within=60)

        # Whatever comes late has come by now: a second page or mail, a second fetch.
        async with db.session() as s:
            incidents = list(await s.scalars(select(Incident)))
            notifications = list(await s.scalars(select(Notification)))
            received = list(await s.scalars(select(ReceivedFile)))

    [incident] = incidents
    assert incident.kind == "export_undeliverable"
    assert (len(pages), len(mails)) == (1, 1), (pages, [m["Subject"] for m in mails])
    assert sns.to(BEN) == sns.to(CAI) == []
    assert all(n.status == "sent" for n in notifications), [
        (n.channel, n.status, n.error) for n in notifications
    ]
    delivered = await _export(db)
    assert delivered is not None and delivered.status == "delivered"
    assert sorted(p.name for p in (sshd.home / "incoming").iterdir()) == ["timesheets_20261102.csv"]
    assert [r.name for r in received] == [waiting.name]
    assert (imp.status, imp.created) == ("completed", 1)


async def _source_failing(db: Database, failing: bool) -> bool:
    """Whether the source's state is `failing` (a poll failed) or recovered (one succeeded)."""
    async with db.session() as s:
        source = await s.scalar(select(Source))
    assert source is not None
    if failing:
        return source.failing_since is not None
    return source.failing_since is None and source.last_success_at is not None
