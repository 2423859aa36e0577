"""Built files: the period's rows, streamed, defused against formulas, read back over SFTP."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, Timesheet
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.exporter.schedule import Run, claim_period
from courier.exporter.worker import Exporter
from tests.exporter.conftest import DAY, make_spec
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.services import running
from tests.support.staged import staged


async def _export_for(db: Database, exporter: Exporter, **overrides: object) -> Export:
    tenant_row = overrides.pop("tenant")
    spec_row = await make_spec(db, tenant_row, **overrides)  # type: ignore[arg-type]
    export = await claim_period(db, spec_row, Run(exporter.clock(), DAY, DAY))
    assert export is not None
    await exporter.process(export.id)
    async with db.session() as s:
        found = await s.get(Export, export.id)
        assert found is not None
        return found


async def test_period_rows_are_written_with_count_and_checksum(
    db: Database, storage: Storage, tenant: Tenant, timesheets: list[Timesheet]
) -> None:
    exporter = Exporter(db, storage)
    export = await _export_for(db, exporter, tenant=tenant)
    assert export.status == "delivered", export.error
    data = await storage.read("tenants/acme/outbound/timesheets_20261102.csv")
    assert export.rows == 3 and export.size == len(data)
    assert export.sha256 == hashlib.sha256(data).hexdigest()
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows == [
        ["Employee", "Name", "Date", "Start", "Hours", "Cost centre"],
        # Start is local (London, GMT in November); pending and other days are left out.
        ["E1", "Amira Ahmed", "2026-11-02", "2026-11-02 09:00", "8.00", "CC-100"],
        ["E2", "'=HYPERLINK(\"http://evil\",\"x\")", "2026-11-02", "2026-11-02 09:00", "7.50",
         "CC-100"],
        ["E4", "Chloé Dubois", "2026-11-02", "2026-11-02 09:00", "8.00", "'+cmd|' /C calc'!A0"],
    ]  # fmt: skip
    assert [e.subject for e in (await staged(db))] == ["courier.export.delivered"]
    [attempt] = export.attempts
    assert (attempt.destination, attempt.outcome, attempt.size) == (
        "pickup:/outbound", "delivered", len(data),
    )  # fmt: skip


async def test_formula_defusing_can_be_turned_off_and_formats_applied(
    db: Database, storage: Storage, tenant: Tenant, timesheets: list[Timesheet]
) -> None:
    exporter = Exporter(db, storage)
    await _export_for(
        db,
        exporter,
        tenant=tenant,
        neutralise_formulas=False,
        approval=["approved", "pending"],
        header=False,
        delimiter=";",
        columns=[
            {"field": "employee_name"},
            {"field": "work_date", "format": "%d/%m/%Y"},
            {"field": "start", "format": "%H%M"},
            {"field": "hours", "format": ".1f"},
            {"field": "cost_centre"},
        ],
        destinations=[{"type": "pickup", "directory": "payroll"}],
    )
    data = await storage.read("tenants/acme/outbound/payroll/timesheets_20261102.csv")
    assert data.decode().splitlines() == [
        "Amira Ahmed;02/11/2026;0900;8.0;CC-100",
        '"=HYPERLINK(""http://evil"",""x"")";02/11/2026;0900;7.5;CC-100',
        "Ben Brown;02/11/2026;0900;8.0;-5",
        "Chloé Dubois;02/11/2026;0900;8.0;+cmd|' /C calc'!A0",
    ]


async def test_build_failure_raises_an_alert_and_leaves_no_file(
    db: Database, storage: Storage, tenant: Tenant, timesheets: list[Timesheet]
) -> None:
    exporter = Exporter(db, storage)
    # Where the export's folder should go there is a file: storage cannot write.
    await storage.put("tenants/acme/exports", b"in the way")
    export = await _export_for(db, exporter, tenant=tenant)
    assert export.status == "failed"
    assert "NotADirectoryError" in (export.error or "") or "FileExistsError" in (export.error or "")
    [alert] = await staged(db)
    assert alert.kind == "export_build_failed"  # type: ignore[attr-defined]
    assert alert.details["spec"] == "payroll"  # type: ignore[attr-defined]
    assert await storage.list("tenants/acme/outbound") == []


@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")
async def test_partner_downloads_the_export_from_the_pickup_area(
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    tmp_path: Path,
) -> None:
    exporter = Exporter(db, storage)
    export = await _export_for(db, exporter, tenant=tenant)
    await provision.create_account(
        db,
        tenant,
        "acme-payroll",
        "Corr3ct-Horse-Battery",
        auth_policy="password",
        allowed_cidrs=["127.0.0.1/32"],
    )
    async with running("gateway", settings):
        result = await openssh_sftp(
            settings.gateway_port,
            "acme-payroll",
            ["ls -l /outbound", f"get /outbound/timesheets_20261102.csv {tmp_path}/got.csv"],
            password="Corr3ct-Horse-Battery",
        )
    assert "timesheets_20261102.csv" in result.stdout, result.stderr
    got = (tmp_path / "got.csv").read_bytes()
    assert hashlib.sha256(got).hexdigest() == export.sha256
    async with db.session() as s:
        assert len(list(await s.scalars(select(Export)))) == 1
