"""A partner tests a feed over SFTP before going live: the file is checked in full, they get
its result, support sees it labelled as a test, and no domain row changes."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Import, LeaveBalance, Tenant
from courier.common.events import IMPORT_COMPLETED
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.cli import cli_env, courier
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running
from tests.support.staged import staged
from tests.support.tenant_objects import ACCOUNT_PASSWORD

pytestmark = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")

PARTNER = "acme-payroll"


@pytest.fixture
async def partner(db: Database, tenant: Tenant) -> str:
    """A partner with two feeds: leave balances by date, and staff lists."""
    await provision.upsert_feed(db, tenant, "leave", "leave_balances", "leave_{yyyyMMdd}.csv", {})
    await provision.upsert_feed(db, tenant, "staff", "staff", "staff_*.csv", {})
    await admin.create_account(
        db, tenant, PARTNER, password=ACCOUNT_PASSWORD, auth_policy="password",
        allow=["127.0.0.1/32"],
    )  # fmt: skip
    return PARTNER


async def sftp(settings: Settings, *commands: str) -> str:
    """Run OpenSSH's sftp as the partner; what it printed (a failed command fails the test)."""
    done = await openssh_sftp(
        settings.gateway_port, PARTNER, list(commands), password=ACCOUNT_PASSWORD
    )
    assert done.returncode == 0 and "Couldn't" not in done.stderr, done.stderr
    return done.stdout


async def finished(db: Database, n: int) -> list[Import]:
    async def probe() -> list[Import] | None:
        async with db.session() as s:
            found = list(await s.scalars(select(Import).order_by(Import.received_at)))
        return found if len(found) >= n and all(i.finished_at for i in found) else None

    return await eventually(probe, within=60)


def first_row(path: Path) -> list[str]:
    """The status row of a result file, as a spreadsheet reads it."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["status", "row", "key", "message"]
    return rows[1]


async def test_a_test_upload_is_checked_answered_and_labelled_and_changes_nothing(
    settings: Settings, db: Database, partner: str, tmp_path: Path
) -> None:
    live = tmp_path / "leave_20261201.csv"
    live.write_bytes(leave_csv("E1,annual,8,2026-12-01"))
    trial = tmp_path / "leave_20261202.csv"
    trial.write_bytes(leave_csv("E1,annual,6,2026-12-02", "E2,annual,4,2026-12-02"))
    wrong = tmp_path / "leave.xlsx"
    wrong.write_bytes(b"not a csv")
    got = tmp_path / "got"
    got.mkdir()

    async with (
        running("importer", settings),
        running("gateway", settings),
        running("console", settings),
    ):
        await sftp(settings, f"put {live} /inbound/")
        await finished(db, 1)
        # The same test file twice, then a name no feed takes.
        await sftp(settings, f"put {trial} /inbound/test/")
        await finished(db, 2)
        await sftp(settings, f"put {trial} /inbound/test/")
        await finished(db, 3)
        await sftp(settings, f"put {wrong} /inbound/")
        imports = await finished(db, 4)

        # The partner collects every answer: two test results, never one replacing the other.
        listing = await sftp(settings, "ls -1 /outbound/results/test", "ls -1 /outbound/results")
        folder = "/outbound/results/test/"
        tests = [p.removeprefix(folder) for p in listing.split() if p.startswith(folder)]
        assert all(n.startswith("leave_20261202.csv.") for n in tests), listing
        assert len(tests) == 2 and all(n.endswith(".result.csv") for n in tests), listing
        await sftp(
            settings,
            f"lcd {got}",
            "get /outbound/results/test/*",
            "get /outbound/results/leave.xlsx.*",
        )

        base = f"http://127.0.0.1:{settings.console_port}"
        async with api_client(base, await make_token(db, "support")) as http:
            only_tests = (await http.get("/api/imports", params={"test": "true"})).json()
            only_live = (await http.get("/api/imports", params={"test": "false"})).json()
            preview = (await http.get(f"/api/imports/{only_tests[0]['id']}")).json()
            page = (await http.get("/imports", params={"test": "true"})).text

        env = cli_env(settings)
        code, cli_tests = await courier(env, "imports", "list", "--test", "--json")
        assert code == 0, cli_tests
        code, cli_table = await courier(env, "imports", "list")
        assert code == 0, cli_table
        code, cli_show = await courier(env, "imports", "show", only_tests[0]["id"])
        assert code == 0, cli_show

    live_imp, test1, test2, refused = imports
    assert [i.test for i in imports] == [False, True, True, False]
    assert [i.status for i in imports] == ["completed", "completed", "completed", "rejected"]
    assert (test1.created, test1.updated) == (1, 1)
    async with db.session() as s:
        balances = {r.employee_id: Decimal(r.balance_hours) for r in await s.scalars(
            select(LeaveBalance)
        )}  # fmt: skip
    assert balances == {"E1": Decimal("8.00")}

    for name in tests:
        assert first_row(got / name) == [
            "completed", "", "",
            "TEST - nothing applied. As a live file it would give: "
            "created 1, updated 1, unchanged 0, deleted 0, errored 0",
        ]  # fmt: skip
    [refusal] = got.glob("leave.xlsx.*.result.csv")
    assert first_row(refusal)[3] == (
        "unrecognised file name: expected one of leave_{yyyyMMdd}.csv, staff_*.csv"
    )

    assert {i["id"] for i in only_tests} == {str(test1.id), str(test2.id)}
    assert all(i["test"] is True for i in only_tests)
    assert {i["id"] for i in only_live} == {str(live_imp.id), str(refused.id)}
    assert [(r["record_key"], r["action"]) for r in preview["records"]] == [
        ("E1/annual", "updated"),
        ("E2/annual", "created"),
    ]
    assert 'class="badge test"' in page

    assert {(i["id"], i["test"]) for i in json.loads(cli_tests)} == {
        (str(test1.id), True), (str(test2.id), True),
    }  # fmt: skip
    assert "completed (test)" in cli_table and "rejected (test)" not in cli_table
    assert "TEST file: checked in full, nothing applied" in cli_show

    completed = [e for e in await staged(db, IMPORT_COMPLETED)]
    assert {(e.import_id, e.test) for e in completed} == {  # type: ignore[attr-defined]
        (live_imp.id, False), (test1.id, True), (test2.id, True),
    }  # fmt: skip
