"""First-days approval: every file of a feed is held from its first live file until five
business days of the tenant's calendar have passed; support sees the days left."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from courier.common.clock import ManualClock
from courier.common.db.models import Feed, Import, Tenant
from courier.common.events import ImportDecide
from courier.common.uow import UnitOfWork
from courier.console.api import create_app
from courier.importer import approval
from tests.importer.conftest import load_import
from tests.support.cli import cli_env, courier
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv

# Monday 21 December 2026, in London. Christmas (Fri 25) and Boxing Day observed (Mon 28)
# are public holidays in England.
MONDAY = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY)


@pytest.fixture
async def first_days(db, tenant: Tenant, feed) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(Tenant)
            .where(Tenant.id == tenant.id)
            .values(holiday_country="GB", holiday_subdivision="ENG")
        )
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval={"live_days": 5})


async def live_since(db) -> datetime | None:
    async with db.session() as s:
        return await s.scalar(select(Feed.live_started_at).where(Feed.name == "leave"))


async def approve(db, storage, clock, imp: Import) -> None:
    command = ImportDecide(import_id=imp.id, tenant_id=imp.tenant_id, decision="approve", by="ops")
    decision = await approval.decide(command, UnitOfWork(db, storage, clock))
    assert decision.outcome == "applied", decision.message


async def test_first_live_file_starts_five_business_days_of_holds_skipping_weekend_and_holidays(
    db, storage, first_days, arrive, clock
) -> None:
    # A test file is checked, not held, and does not start the live period.
    rehearsal = await arrive("test/leave_0.csv", leave_csv("E1,annual,1,2026-11-01"))
    assert rehearsal.test and rehearsal.status == "completed"
    assert await live_since(db) is None

    first = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert first.status == "awaiting_approval"
    assert first.details["held"] == (
        "first-days approval: 5 business days left, since 2026-12-21 09:00 Europe/London "
        "(files flow without hold from 2026-12-30)"
    )
    assert await live_since(db) == MONDAY
    await approve(db, storage, clock, first)

    # Tuesday after Christmas: Mon-Thu and Tue 29 are the five; the 25th, the weekend
    # and Boxing Day observed are not business days.
    clock.set(datetime(2026, 12, 29, 16, 0, tzinfo=UTC))
    last_held = await arrive("leave_2.csv", leave_csv("E1,annual,9,2026-11-01"))
    assert last_held.status == "awaiting_approval"
    assert last_held.details["held"].startswith("first-days approval: 1 business day left")
    await approve(db, storage, clock, last_held)

    clock.set(datetime(2026, 12, 30, 8, 0, tzinfo=UTC))
    flowing = await arrive("leave_3.csv", leave_csv("E1,annual,10,2026-11-01"))
    assert flowing.status == "completed"
    # Set once, by the first live file.
    assert await live_since(db) == MONDAY


async def test_days_left_are_shown_in_the_cli_and_the_console(
    settings, db, storage, tenant, first_days, drop, send
) -> None:
    env = cli_env(settings)
    code, out = await courier(env, "feeds", "show", "leave")
    assert code == 0, out
    assert "first-days approval: 5 business days, from the feed's first live file (none yet)" in out

    # The CLI and the console read the real time: the period starts now.
    held = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert held.status == "awaiting_approval"
    code, out = await courier(env, "feeds", "show", "leave", "--tenant", "acme")
    assert code == 0, out
    assert "first-days approval: 5 business days left, since" in out
    assert "files awaiting approval: 1" in out
    code, out = await courier(env, "imports", "show", str(held.id))
    assert "held: first-days approval: 5 business days left" in out
    code, out = await courier(env, "feeds", "list", "--json")
    [listed] = json.loads(out)
    assert (listed["first_days"]["days_left"], listed["awaiting_approval"]) == (5, 1)

    app = create_app(db, storage, settings)
    async with api_client(app, await make_token(db, "support")) as http:
        [summary] = (await http.get("/api/feeds")).json()
        assert summary["first_days"]["days_left"] == 5
        detail = (await http.get(f"/api/feeds/{summary['id']}")).json()
        assert detail["first_days"]["text"].startswith("first-days approval: 5 business days left")
        page = await http.get(f"/feeds/{summary['id']}")
        assert "5 business days left" in page.text
    assert (await load_import(db, held.id)).status == "awaiting_approval"


async def test_hold_until_a_date_and_hold_always_still_work(feed, arrive) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval="2026-12-21")
    assert (await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))).status == (
        "awaiting_approval"
    )
    await feed("roles", "roles", "roles_*.csv", hold_for_approval=True)
    assert (await arrive("roles_1.csv", b"code,name\nNURSE,Nurse\n")).status == "awaiting_approval"
