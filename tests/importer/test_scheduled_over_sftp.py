"""A partner uploads outside the feed's apply window with OpenSSH: they read at once that the
file was accepted and when it will be applied; the running importer applies it then."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Import, LeaveBalance, Tenant
from courier.common.settings import Settings
from courier.importer.spec import FeedSpec
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running
from tests.support.tenant_objects import ACCOUNT_PASSWORD

pytestmark = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")

PARTNER = "acme-payroll"


@pytest.fixture
async def partner(db: Database, tenant: Tenant) -> str:
    spec = FeedSpec(name="leave", kind="leave_balances", pattern="leave_*.csv",
                    apply_window="01:00-05:00")  # type: ignore[arg-type]  # fmt: skip
    await provision.upsert_feed(
        db, tenant, "leave", "leave_balances", "leave_*.csv", spec.model_dump(mode="json")
    )
    await provision.create_account(
        db,
        tenant,
        PARTNER,
        ACCOUNT_PASSWORD,
        auth_policy="password",
        allowed_cidrs=["127.0.0.1/32"],
    )
    return PARTNER


async def sftp(settings: Settings, *commands: str) -> str:
    done = await openssh_sftp(
        settings.gateway_port, PARTNER, list(commands), password=ACCOUNT_PASSWORD
    )
    assert "Couldn't" not in done.stderr and "denied" not in done.stderr, done.stderr
    return done.stdout


async def the_import(db: Database, status: str) -> Import | None:
    async with db.session() as s:
        imp = await s.scalar(select(Import))
    return imp if imp is not None and imp.status == status else None


async def balances(db: Database) -> dict[str, Decimal]:
    async with db.session() as s:
        return {r.employee_id: Decimal(r.balance_hours) for r in await s.scalars(
            select(LeaveBalance)
        )}  # fmt: skip


def messages(folder: Path) -> list[str]:
    """The status message of each result file the partner downloaded."""
    out = []
    for path in sorted(folder.glob("*.result.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            out.append(list(csv.reader(fh))[1][3])
    return out


async def test_upload_outside_the_window_is_answered_at_once_and_applied_at_the_window(
    settings: Settings, db: Database, partner: str, tmp_path: Path
) -> None:
    upload = tmp_path / "leave_20261201.csv"
    upload.write_bytes(leave_csv("E1,annual,8,2026-12-01"))
    got = tmp_path / "got"
    got.mkdir()
    clock = ManualClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    fast = settings.model_copy(update={"importer_window_tick_seconds": 0.2})

    async with running("importer", fast, clock), running("gateway", fast):
        await sftp(settings, f"put {upload} /inbound/")
        await eventually(lambda: the_import(db, "scheduled"), within=60)
        await sftp(settings, f"lcd {got}", "get /outbound/results/*")
        [answer] = messages(got)
        assert answer == (
            "accepted; checked, to be applied at 2026-12-02 01:00 GMT (Europe/London); "
            "would be: created 1, updated 0, unchanged 0, deleted 0, errored 0"
        )
        assert await balances(db) == {}

        clock.set(datetime(2026, 12, 2, 1, 0, 10, tzinfo=UTC))
        await eventually(lambda: the_import(db, "completed"), within=30)
        assert await balances(db) == {"E1": Decimal("8.00")}
