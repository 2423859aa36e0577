"""Held imports: the change set is shown, applied exactly on approval, or discarded."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from courier.common.db.models import Import, LeaveBalance, Tenant
from courier.common.events import ImportCompleted, ImportDecide
from courier.common.uow import UnitOfWork
from courier.console.api import create_app
from courier.importer import apply, approval
from tests.importer.conftest import load_import, records
from tests.support.cli import bus_down, cli_env, courier
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running
from tests.support.staged import staged


async def balances(db) -> dict[str, Decimal]:
    async with db.session() as s:
        return {
            r.employee_id: Decimal(r.balance_hours) for r in await s.scalars(select(LeaveBalance))
        }


async def decide(db, storage, import_id: uuid.UUID, decision: str, by: str = "ops"):
    """What the importer does with a `courier.import.decide` command."""
    imp = await load_import(db, import_id)
    command = ImportDecide(import_id=import_id, tenant_id=imp.tenant_id, decision=decision, by=by)
    return await approval.decide(command, UnitOfWork(db, storage))


async def completed_events(db, import_id: uuid.UUID) -> list[ImportCompleted]:
    events = await staged(db, "courier.import.completed")
    return [e for e in events if e.import_id == import_id]  # type: ignore[attr-defined]


@pytest.fixture
async def held(feed) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval=True)


async def test_held_file_shows_its_change_set_and_approval_applies_it(
    db, storage, held, send
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01", "E2,annual,x,2026-11-01"))
    assert (imp.status, imp.created, imp.errored) == ("awaiting_approval", 1, 1)
    assert imp.details["held"] == "the feed holds files for approval (hold_for_approval)"
    assert [r.action for r in await records(db, imp)] == ["created", "errored"]
    assert await balances(db) == {}

    decision = await decide(db, storage, imp.id, "approve", "ops@acme")
    assert decision.outcome == "applied"
    done = await load_import(db, imp.id)
    assert (done.status, done.decided_by) == ("completed_with_errors", "ops@acme")
    assert await balances(db) == {"E1": Decimal("8.00")}
    held_event, event = await completed_events(db, imp.id)
    assert held_event.status == "awaiting_approval"
    assert (event.status, event.counts.created, event.feed) == ("completed_with_errors", 1, "leave")


async def test_approval_after_the_data_changed_shows_the_new_change_set_first(
    db, storage, held, send
) -> None:
    async with db.transaction() as s:
        tenant = await s.scalar(select(Tenant))
        s.add(LeaveBalance(tenant_id=tenant.id, employee_id="E1", leave_type="annual",
                           balance_hours=Decimal(1), as_of=date(2026, 10, 1)))  # fmt: skip
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    [shown] = await records(db, imp)
    assert shown.changes["balance_hours"] == ["1.00", "8.00"]
    async with db.transaction() as s:
        await s.execute(update(LeaveBalance).values(balance_hours=Decimal(3)))

    decision = await decide(db, storage, imp.id, "approve")
    assert decision.outcome == "changed"
    assert (await load_import(db, imp.id)).status == "awaiting_approval"
    [recomputed] = await records(db, imp)
    assert recomputed.changes["balance_hours"] == ["3.00", "8.00"]
    assert await balances(db) == {"E1": Decimal("3.00")}

    assert (await decide(db, storage, imp.id, "approve")).outcome == "applied"
    assert await balances(db) == {"E1": Decimal("8.00")}


async def test_rejected_change_set_is_discarded_and_a_late_approval_refused(
    db, storage, held, send
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    decision = await decide(db, storage, imp.id, "reject")
    assert (decision.outcome, (await load_import(db, imp.id)).status) == ("discarded", "discarded")
    assert await balances(db) == {}
    late = await decide(db, storage, imp.id, "approve", "late@acme")
    assert (late.outcome, late.message) == (
        "refused", f"import {imp.id} is discarded, not awaiting approval",
    )  # fmt: skip
    [refused] = (await load_import(db, imp.id)).details["refused_decisions"]
    assert (refused["by"], refused["decision"]) == ("late@acme", "approve")
    assert await balances(db) == {}


async def test_later_files_wait_behind_a_held_one_and_are_approved_in_order(
    db, storage, feed, send
) -> None:
    until = date.today() + timedelta(days=1)
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval=until.isoformat())
    first = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    await feed("leave", "leave_balances", "leave_*.csv")  # the approval period ended
    second = await send("leave_2.csv", leave_csv("E1,annual,9,2026-11-01"))
    assert second.status == "awaiting_approval"
    assert second.details["held"] == "an earlier file of this feed awaits approval"
    early = await decide(db, storage, second.id, "approve")
    assert early.outcome == "refused" and f"earlier import {first.id}" in early.message
    assert (await decide(db, storage, first.id, "approve")).outcome == "applied"
    # Shown as a create, now an update of the first file's balance: shown again.
    assert (await decide(db, storage, second.id, "approve")).outcome == "changed"
    assert (await decide(db, storage, second.id, "approve")).outcome == "applied"
    assert await balances(db) == {"E1": Decimal("9.00")}


async def test_hold_until_a_past_date_no_longer_holds(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval="2020-01-01")
    assert (await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))).status == "completed"


async def test_console_approval_is_carried_out_by_the_importer(
    settings, db, storage, held, send
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    token = await make_token(db, "support", name="ops@acme")
    async with (
        running("importer", settings),
        api_client(create_app(db, storage, settings), token) as http,
    ):
        answer = await http.post(f"/api/imports/{imp.id}/approve")
        assert answer.status_code == 202, answer.text

        async def applied() -> str | None:
            status = (await http.get(f"/api/imports/{imp.id}")).json()["status"]
            return status if status == "completed" else None

        await eventually(applied)
        refused = await http.post(f"/api/imports/{imp.id}/reject")
        assert refused.status_code == 409
        assert "not awaiting approval" in refused.json()["detail"]
        missing = await http.post(f"/api/imports/{uuid.uuid4()}/approve")
        assert missing.status_code == 404
    assert await balances(db) == {"E1": Decimal("8.00")}


async def test_cli_approve_and_reject(settings, db, held, send) -> None:
    first = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    env = cli_env(settings)
    async with running("importer", settings):
        code, out = await courier(env, "imports", "approve", str(first.id), "--by", "ops")
        assert code == 0, out
        assert "applied: completed" in out and "decided by ops" in out

        second = await send("leave_2.csv", leave_csv("E1,annual,9,2026-11-01"))
        code, out = await courier(env, "imports", "reject", str(second.id))
        assert code == 0, out
        assert "change set discarded" in out
        code, out = await courier(env, "imports", "approve", str(second.id))
        assert code == 1 and "not awaiting approval" in out
    assert await balances(db) == {"E1": Decimal("8.00")}
    # Downstream services hear of a CLI approval as of one made in the console.
    _, event = await completed_events(db, first.id)
    assert (event.status, event.counts.created) == ("completed", 1)


async def test_decisions_made_while_the_importer_is_stopped_are_applied_once_when_it_starts(
    settings, db, storage, tenant, feed, send
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval=True)
    await feed("roles", "roles", "roles_*.csv", hold_for_approval=True)
    leave = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    roles = await send("roles_1.csv", b"code,name\nNURSE,Nurse\n")
    assert (leave.status, roles.status) == ("awaiting_approval", "awaiting_approval")

    # The CLI, with the bus down: the decision is queued, and shown as pending.
    down = bus_down(settings)
    code, out = await courier(down, "imports", "approve", str(leave.id), "--by", "cli@acme")
    assert code == 0, out
    assert "approve queued: the bus is not reachable" in out
    code, out = await courier(down, "imports", "show", str(leave.id))
    assert "decision pending: approve by cli@acme" in out and "queued" in out
    # The console, with no importer running; and a second click on the same import.
    app = create_app(db, storage, settings)
    for who in ("web@acme", "again@acme"):
        async with api_client(app, await make_token(db, "support", name=who)) as http:
            answer = await http.post(f"/api/imports/{roles.id}/approve")
            assert answer.status_code == 202, answer.text
    async with api_client(app, await make_token(db, "support")) as http:
        shown = (await http.get(f"/api/imports/{roles.id}")).json()
    assert [p["by"] for p in shown["pending_decisions"]] == ["token:web@acme", "token:again@acme"]
    assert await balances(db) == {}

    async with running("importer", settings):

        async def decided() -> list[Import] | None:
            done = [await load_import(db, i.id) for i in (leave, roles)]
            second = done[1].details.get("refused_decisions")
            return done if all(d.decided_at for d in done) and second else None

        leave_done, roles_done = await eventually(decided)
    assert (leave_done.status, leave_done.decided_by) == ("completed", "cli@acme")
    assert (roles_done.status, roles_done.decided_by) == ("completed", "token:web@acme")
    [refused] = roles_done.details["refused_decisions"]
    assert refused["by"] == "token:again@acme" and "not awaiting approval" in refused["reason"]
    assert await balances(db) == {"E1": Decimal("8.00")}
    # Exactly once: one completion event each, one audit row each.
    for imp in (leave, roles):
        statuses = [e.status for e in await completed_events(db, imp.id)]
        assert statuses == ["awaiting_approval", "completed"]
    assert len(await records(db, leave_done)) == len(await records(db, roles_done)) == 1


class Stopped(Exception):
    """The process died here."""


async def test_an_approval_cut_off_half_way_applies_nothing_and_is_applied_once_when_redelivered(
    db, storage, tenant, held, send, monkeypatch
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    before = await staged(db)
    write_result = apply.write_result

    async def dies(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Stopped

    monkeypatch.setattr(apply, "write_result", dies)
    with pytest.raises(Stopped):
        await decide(db, storage, imp.id, "approve")
    cut = await load_import(db, imp.id)
    # One transaction: the change set, the decision and the events, or none of them.
    assert (cut.status, cut.decision, cut.decided_at) == ("awaiting_approval", None, None)
    assert await balances(db) == {}
    assert len(await staged(db)) == len(before)

    monkeypatch.setattr(apply, "write_result", write_result)
    assert (await decide(db, storage, imp.id, "approve")).outcome == "applied"
    assert (await decide(db, storage, imp.id, "approve")).outcome == "refused"
    done = await load_import(db, imp.id)
    assert done.decided_by == "ops" and done.decided_at is not None
    results = await storage.list(f"tenants/{tenant.slug}/outbound/results")
    assert any("leave_1" in o.key for o in results)
    statuses = [e.status for e in await completed_events(db, imp.id)]
    assert statuses == ["awaiting_approval", "completed"]
    assert await balances(db) == {"E1": Decimal("8.00")}
