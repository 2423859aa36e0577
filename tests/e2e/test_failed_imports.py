"""A file we fail to import (not the partner's fault) from arrival to the people who must
know: the importer records it as failed and tells the partner in their result file, the
monitor opens an `import_failed` incident, the notifier pages on-call by SMS (moto's SNS)
and e-mails the feed's contact (aiosmtpd). Nothing of the file is applied."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text

from courier.cli import provision
from courier.common.areas import area_key
from courier.common.bus import Bus
from courier.common.clock import ManualClock
from courier.common.db.engine import Database, is_sqlite
from courier.common.db.models import Import, LeaveBalance, Tenant
from courier.common.db.models_incidents import Incident
from courier.common.received import add_received, keep_copy, record_file
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.importer.apply import DATABASE_FAILURE
from courier.notifier.rota import Rota
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.fixtures_data import leave_csv
from tests.support.paging import Mailbox, Sns, body
from tests.support.paging_fixtures import ANA, CONTACT
from tests.support.services import at_once, eventually, running
from tests.support.tenant_objects import declare_feed

pytestmark = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")

PASSWORD = "Corr3ct-Horse-Battery"
NAME = "leave_20261201.csv"
# It would change E100's balance and add E200's, if it were applied.
FILE = leave_csv("E100,annual,72.00,2026-12-01", "E200,annual,40,2026-12-01")
FROZEN = "leave balances are frozen for the year-end close"

Send = Callable[[Settings, Database, Storage, Tenant, Path], Awaitable[None]]


async def _upload(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(FILE)
    sent = await openssh_sftp(
        settings.gateway_port, "acme-payroll", [f"put {tmp_path / NAME} /inbound/"],
        password=PASSWORD,
    )  # fmt: skip
    assert "Uploading" in sent.stdout, sent.stderr


async def _freeze_leave_balances(db: Database) -> None:
    """A database that refuses every write to leave balances, as a trigger does."""
    async with db.transaction() as s:
        if is_sqlite(db.url):
            for action in ("INSERT", "UPDATE", "DELETE"):
                await s.execute(
                    text(
                        f"CREATE TRIGGER leave_balances_frozen_{action.lower()} "
                        f"BEFORE {action} ON leave_balances "
                        f"BEGIN SELECT RAISE(ABORT, '{FROZEN}'); END"
                    )
                )
        else:
            await s.execute(
                text(
                    "CREATE FUNCTION leave_balances_frozen() RETURNS trigger "
                    f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{FROZEN}'; END $$"
                )
            )
            await s.execute(
                text(
                    "CREATE TRIGGER leave_balances_frozen "
                    "BEFORE INSERT OR UPDATE OR DELETE ON leave_balances "
                    "FOR EACH STATEMENT EXECUTE FUNCTION leave_balances_frozen()"
                )
            )


async def _thaw_leave_balances(db: Database) -> None:
    async with db.transaction() as s:
        if is_sqlite(db.url):
            for action in ("insert", "update", "delete"):
                await s.execute(text(f"DROP TRIGGER leave_balances_frozen_{action}"))
        else:
            await s.execute(text("DROP TRIGGER leave_balances_frozen ON leave_balances"))


async def _database_refuses(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant, tmp_path: Path
) -> None:
    await _freeze_leave_balances(db)
    await _upload(settings, tmp_path)


async def _stored_bytes_differ(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant, tmp_path: Path
) -> None:
    """Announced with the checksum the gateway computed; what storage holds is not that."""
    inbound = area_key(tenant.slug, "inbound", NAME)
    await storage.put(inbound, FILE)
    announced = hashlib.sha256(FILE.replace(b"72.00", b"27.00")).hexdigest()
    await record_file(
        db, storage, tenant, NAME, inbound, source="gateway", account="acme-payroll",
        sha256=announced,
    )  # fmt: skip


async def _stored_file_missing(
    settings: Settings, db: Database, storage: Storage, tenant: Tenant, tmp_path: Path
) -> None:
    """Announced, and its stored copy gone before the importer reads it."""
    inbound = area_key(tenant.slug, "inbound", NAME)
    await storage.put(inbound, FILE)
    row = await keep_copy(storage, tenant, NAME, inbound, source="gateway", account="acme-payroll")
    await storage.delete(row.storage_key)
    async with db.transaction() as s:
        add_received(s, row, tenant)


CAUSES: dict[str, tuple[Send, str]] = {
    "database_error": (_database_refuses, DATABASE_FAILURE),
    "checksum_mismatch": (
        _stored_bytes_differ,
        "stored file does not match its announced checksum",
    ),
    "stored_file_missing": (_stored_file_missing, "the stored file is missing"),
}


async def _failed(db: Database) -> Import | None:
    async with db.session() as s:
        return await s.scalar(select(Import).where(Import.status == "failed"))


async def _incident(db: Database) -> Incident | None:
    async with db.session() as s:
        return await s.scalar(select(Incident).where(Incident.kind == "import_failed"))


async def _balances(db: Database) -> dict[tuple[str, str], Decimal]:
    async with db.session() as s:
        rows = await s.scalars(select(LeaveBalance))
        return {(b.employee_id, b.leave_type): b.balance_hours for b in rows}


@pytest.mark.parametrize("cause", list(CAUSES))
async def test_a_failed_import_tells_the_partner_pages_oncall_and_emails_the_contact(
    cause: str,
    paging: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    send, reason = CAUSES[cause]
    await declare_feed(
        db, tenant, "leave-balances", "leave_*.csv",
        contacts=[{"name": "Payroll IT", "email": CONTACT}],
    )  # fmt: skip
    await provision.create_account(
        db, tenant, "acme-payroll", PASSWORD, auth_policy="password",
        allowed_cidrs=["127.0.0.1/32"],
    )  # fmt: skip
    async with db.transaction() as s:
        s.add(
            LeaveBalance(
                tenant_id=tenant.id, employee_id="E100", leave_type="annual",
                balance_hours=Decimal("80.00"), as_of=date(2026, 11, 1),
            )
        )  # fmt: skip
    before = await _balances(db)

    async with (
        running("importer", paging, clock),
        running("monitor", paging, clock),
        running("notifier", paging, clock),
        running("gateway", paging),
    ):
        await send(paging, db, storage, tenant, tmp_path)
        # A database fault is tried again (max_deliver times, pausing in between) first.
        imp = await eventually(lambda: _failed(db), within=150)
        incident = await eventually(lambda: _incident(db), within=30)
        texts = await eventually(lambda: at_once(sns.to(ANA)), within=30)
        mails = await eventually(lambda: at_once(mailbox.to(CONTACT)), within=30)

        assert imp.result_key is not None
        got = await openssh_sftp(
            paging.gateway_port, "acme-payroll",
            [f"get /outbound/{imp.result_key.split('/outbound/', 1)[1]} {tmp_path}/result.csv"],
            password=PASSWORD,
        )  # fmt: skip
        assert (tmp_path / "result.csv").exists(), got.stderr

    # The import: failed, with the reason; nothing of the file applied.
    assert (imp.file_name, imp.error) == (NAME, reason)
    assert imp.created == imp.updated == imp.deleted == 0
    assert await _balances(db) == before == {("E100", "annual"): Decimal("80.00")}
    async with db.session() as s:
        assert len(list(await s.scalars(select(Import)))) == 1
    if cause == "database_error":
        assert FROZEN in imp.details["database_error"]

    # The partner's result file says it failed, and why.
    lines = list(csv.reader(io.StringIO((tmp_path / "result.csv").read_text())))
    assert lines[1][0] == "failed" and lines[1][3] == reason

    # Support: an open platform incident with the reason.
    assert (incident.state, incident.incident_class) == ("open", "platform")
    assert incident.summary == f"import of {NAME} failed: {reason}"
    assert incident.details["reason"] == reason
    assert (incident.tenant, incident.feed, incident.file_name) == ("acme", "leave-balances", NAME)

    # On-call is paged by SMS; the feed's contact is told by e-mail that it is in hand.
    assert "import_failed" in texts[0] and NAME in texts[0]
    [mail] = mails
    assert mail["Subject"] == f"[Courier] acme: import failed (leave-balances): {NAME}"
    text_ = body(mail)
    assert "problem on our side" in text_ and reason in text_
    assert "database_error" not in text_ and FROZEN not in text_

    # The last try recorded the failure: the bus did not give up on the message.
    async with db.session() as s:
        kinds = set(await s.scalars(select(Incident.kind)))
    assert kinds == {"import_failed"}


async def test_a_database_fault_that_passes_is_tried_again_and_the_file_imports_once(
    settings: Settings, db: Database, storage: Storage, bus: Bus, tenant: Tenant
) -> None:
    await declare_feed(db, tenant, "leave-balances", "leave_*.csv")
    await _freeze_leave_balances(db)
    js = bus.broker.connection.jetstream()

    async def tried_again() -> bool:
        info = await js.consumer_info(bus.stream("COURIER_FILES"), bus.durable("importer"))
        return info.num_redelivered >= 1

    async def imported() -> Import | None:
        async with db.session() as s:
            return await s.scalar(select(Import))

    async with running("importer", settings), running("monitor", settings):
        inbound = area_key(tenant.slug, "inbound", NAME)
        await storage.put(inbound, FILE)
        await record_file(db, storage, tenant, NAME, inbound, source="gateway")
        await eventually(tried_again)
        await _thaw_leave_balances(db)  # the database is back to normal
        imp = await eventually(imported, within=30)

    assert (imp.status, imp.created, imp.updated) == ("completed", 2, 0)
    assert await _balances(db) == {
        ("E100", "annual"): Decimal("72.00"),
        ("E200", "annual"): Decimal("40.00"),
    }
    async with db.session() as s:
        assert list(await s.scalars(select(Incident))) == []
