"""One tenant's worth of everything the console shows, made by the services' own handlers.

Console tests need real objects of two tenants (isolation) or of one (pages, secrets):
a feed, an imported file with a created and an errored row (and its result file), a
held import, an incident, a built export, an SFTP account and a gateway session. Each
is made the way the owning service makes it, so the console reads what production has.
Every name carries the tenant's slug, so a test can tell whose object a page shows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from courier.cli import provision
from courier.cli.section_exports import upsert_export_spec
from courier.common.areas import area_key
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, SftpAccount, Tenant
from courier.common.db.models_console import ApiToken, ConsoleUser
from courier.common.db.models_exports import Export
from courier.common.db.models_incidents import SlaPolicy
from courier.common.received import event_for, record_file
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.exporter.schedule import Run, claim_period
from courier.exporter.spec import ExportSpecModel
from courier.exporter.worker import Exporter
from courier.gateway.audit import AuditLog, SessionRef
from courier.importer.apply import handle
from courier.importer.spec import FeedSpec
from courier.monitor.incidents import Signal, record_signals
from tests.support.console_routes import Fill, of_objects
from tests.support.fixtures_data import leave_csv

ACCOUNT_PASSWORD = "sftp account password 1"


@dataclass
class TenantObjects:
    tenant: Tenant
    feed: Feed
    held_feed: Feed
    imported: Import  # completed_with_errors: one created row, one errored
    original: bytes  # the bytes of `imported` as the partner sent them
    held: Import  # awaiting_approval
    incident_id: uuid.UUID
    export: Export
    account: SftpAccount
    session_id: str

    @property
    def markers(self) -> list[str]:
        """Text that only a page showing this tenant's objects would contain."""
        return [
            self.tenant.slug,
            self.tenant.name,
            self.feed.name,
            self.imported.file_name,
            self.held.file_name,
            str(self.incident_id),
            str(self.export.file_name),
            self.account.username,
            self.session_id,
        ]

    def fill(self, user: ConsoleUser, token: ApiToken, **more: tuple[Any, str]) -> Fill:
        """Fill a route's parameters with these objects (`import_id`: the imported file),
        the console user and token given, and any `more` (which win)."""
        return of_objects(
            {
                "tenant": (self.tenant.id, self.tenant.slug),
                "feed": (self.feed.id, self.feed.name),
                "import": (self.imported.id, self.imported.file_name),
                "held": (self.held.id, self.held.file_name),
                "incident": (self.incident_id, str(self.incident_id)),
                "export": (self.export.id, str(self.export.file_name)),
                "account": (self.account.id, self.account.username),
                "session": (self.session_id, self.session_id),
                "user": (user.id, user.username),
                "token": (token.id, token.name),
                **more,
            }
        )


async def declare_feed(
    db: Database,
    tenant: Tenant,
    name: str,
    pattern: str,
    kind: str = "leave_balances",
    **options: object,
) -> Feed:
    """A feed (of leave balances unless told), as `courier feeds apply` declares it
    (validated spec)."""
    spec = FeedSpec.model_validate({"name": name, "kind": kind, "pattern": pattern, **options})
    return await provision.upsert_feed(
        db, tenant, name, kind, pattern, spec.model_dump(mode="json")
    )


async def import_file(
    db: Database, storage: Storage, tenant: Tenant, name: str, data: bytes
) -> Import:
    """A file dropped in the tenant's /inbound (as the gateway records it), then imported."""
    key = area_key(tenant.slug, "inbound", f"{uuid.uuid4().hex[:6]}-{name}")
    await storage.put(key, data)
    row = await record_file(db, storage, tenant, name, key, source="api")
    await handle(event_for(row, tenant), UnitOfWork(db, storage))
    async with db.session() as s:
        imp = await s.scalar(select(Import).where(Import.file_id == row.id))
    assert imp is not None, f"{name} was not imported"
    return imp


async def open_incident(db: Database, tenant: Tenant, file_name: str) -> uuid.UUID:
    """A partner incident as the monitor opens one for a rejected file (it e-mails the
    feed's contacts once the notifier routes it)."""
    signal = Signal(
        kind="file_rejected",
        cause_key=f"{tenant.id}|{file_name}",
        event_key=f"test:{uuid.uuid4()}",
        summary=f"file {file_name} rejected: unrecognised file name",
        tenant_id=tenant.id,
        tenant=tenant.slug,
        file_name=file_name,
        contacts=[{"name": "Payroll IT", "email": f"payroll-it@{tenant.slug}.example"}],
    )
    async with db.transaction() as s:
        (opened,) = await record_signals(s, [signal], datetime.now(UTC), SlaPolicy())
    return opened.id


async def build_export(db: Database, storage: Storage, tenant: Tenant) -> Export:
    """Yesterday's timesheets export, built and written to the pickup area."""
    spec = ExportSpecModel.model_validate(
        {
            "name": f"{tenant.slug}-payroll",
            "kind": "timesheets",
            "schedule": {"cron": "0 6 * * *", "timezone": "UTC"},
            "period": "previous_day",
            "columns": [{"field": "employee_id"}, {"field": "hours"}],
            "file_name": f"timesheets_{tenant.slug}_{{start:%Y%m%d}}.csv",
            "destinations": [{"type": "pickup"}],
        }
    )
    now = datetime.now(UTC)
    row = await upsert_export_spec(db, tenant, spec, now=now - timedelta(days=2))
    day = date.today() - timedelta(days=1)
    export = await claim_period(db, row, Run(now, day, day))
    assert export is not None
    await Exporter(db, storage).process(export.id)
    async with db.session() as s:
        built = await s.get(Export, export.id)
    assert built is not None and built.file_name, "the export was not built"
    return built


async def gateway_session(db: Database, tenant: Tenant, username: str) -> str:
    """A login and an upload, audited as the gateway audits them."""
    ref = SessionRef(
        id=f"s-{tenant.slug}-{uuid.uuid4().hex[:8]}",
        peer="192.0.2.10",
        username=username,
        tenant=tenant.slug,
    )
    audit = AuditLog(db)
    audit.add(ref, "login_succeeded")
    audit.add(ref, "upload", path=f"/inbound/leave_{tenant.slug}.csv", size=42)
    audit.add(ref, "disconnected")
    await audit.flush()
    return ref.id


async def populate(db: Database, storage: Storage, slug: str) -> TenantObjects:
    """A tenant `slug` with one of each kind of object."""
    tenant = await provision.ensure_tenant(db, slug, f"{slug.title()} Ltd", "Europe/London")
    feed = await declare_feed(
        db,
        tenant,
        f"{slug}-leave",
        f"leave_{slug}_*.csv",
        expect={"cron": "0 9 * * *", "timezone": "Europe/London", "window_minutes": 120},
    )
    held_feed = await declare_feed(
        db, tenant, f"{slug}-held", f"held_{slug}_*.csv", hold_for_approval=True
    )
    original = leave_csv("E1,annual,8,2026-11-01", "E2,annual,not-a-number,2026-11-01")
    imported = await import_file(db, storage, tenant, f"leave_{slug}_1.csv", original)
    held = await import_file(
        db, storage, tenant, f"held_{slug}_1.csv", leave_csv("E7,annual,16,2026-11-01")
    )
    account = await provision.create_account(db, tenant, f"{slug}-upload", ACCOUNT_PASSWORD)
    return TenantObjects(
        tenant=tenant,
        feed=feed,
        held_feed=held_feed,
        imported=imported,
        original=original,
        held=held,
        incident_id=await open_incident(db, tenant, f"wrong_{slug}.csv"),
        export=await build_export(db, storage, tenant),
        account=account,
        session_id=await gateway_session(db, tenant, account.username),
    )
