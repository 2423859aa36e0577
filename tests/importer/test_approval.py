"""Held imports: the change set is shown, applied exactly on approval, or discarded."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from courier.common.db.models import LeaveBalance
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import ImportCompleted
from courier.console.api import create_app
from courier.importer import approval
from tests.importer.conftest import load_import, records
from tests.support.fixtures_data import leave_csv
from tests.support.infra import free_port
from tests.support.services import eventually, running


async def balances(db) -> dict[str, Decimal]:
    async with db.session() as s:
        return {
            r.employee_id: Decimal(r.balance_hours) for r in await s.scalars(select(LeaveBalance))
        }


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

    decision = await approval.approve(db, storage, imp.id, "ops@acme")
    assert decision.outcome == "applied"
    done = await load_import(db, imp.id)
    assert (done.status, done.decided_by) == ("completed_with_errors", "ops@acme")
    assert await balances(db) == {"E1": Decimal("8.00")}
    assert [e.subject for e in decision.events] == ["courier.import.completed"]


async def test_approval_after_the_data_changed_shows_the_new_change_set_first(
    db, storage, held, send
) -> None:
    async with db.transaction() as s:
        from courier.common.db.models import Tenant

        tenant = await s.scalar(select(Tenant))
        s.add(LeaveBalance(tenant_id=tenant.id, employee_id="E1", leave_type="annual",
                           balance_hours=Decimal(1), as_of=date(2026, 10, 1)))  # fmt: skip
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    [shown] = await records(db, imp)
    assert shown.changes["balance_hours"] == ["1.00", "8.00"]
    async with db.transaction() as s:
        await s.execute(update(LeaveBalance).values(balance_hours=Decimal(3)))

    decision = await approval.approve(db, storage, imp.id, "ops")
    assert decision.outcome == "changed"
    assert (await load_import(db, imp.id)).status == "awaiting_approval"
    [recomputed] = await records(db, imp)
    assert recomputed.changes["balance_hours"] == ["3.00", "8.00"]
    assert await balances(db) == {"E1": Decimal("3.00")}

    assert (await approval.approve(db, storage, imp.id, "ops")).outcome == "applied"
    assert await balances(db) == {"E1": Decimal("8.00")}


async def test_rejected_change_set_is_discarded(db, storage, held, send) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    decision = await approval.reject(db, storage, imp.id, "ops")
    assert (decision.outcome, (await load_import(db, imp.id)).status) == ("discarded", "discarded")
    assert await balances(db) == {}
    with pytest.raises(approval.ApprovalError, match="is discarded, not awaiting approval"):
        await approval.approve(db, storage, imp.id, "ops")


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
    with pytest.raises(approval.ApprovalError, match=f"earlier import {first.id}"):
        await approval.approve(db, storage, second.id, "ops")
    assert (await approval.approve(db, storage, first.id, "ops")).outcome == "applied"
    # Shown as a create, now an update of the first file's balance: shown again.
    assert (await approval.approve(db, storage, second.id, "ops")).outcome == "changed"
    assert (await approval.approve(db, storage, second.id, "ops")).outcome == "applied"
    assert await balances(db) == {"E1": Decimal("9.00")}


async def test_hold_until_a_past_date_no_longer_holds(db, feed, send) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", hold_for_approval="2020-01-01")
    assert (await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))).status == "completed"


async def test_console_approval_is_carried_out_by_the_importer(
    settings, db, storage, held, send
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    transport = httpx.ASGITransport(app=create_app(db, storage))
    async with (
        running("importer", settings),
        httpx.AsyncClient(transport=transport, base_url="http://console") as http,
    ):
        answer = await http.post(f"/api/imports/{imp.id}/approve", json={"by": "ops@acme"})
        assert answer.status_code == 202, answer.text

        async def applied() -> str | None:
            status = (await http.get(f"/api/imports/{imp.id}")).json()["status"]
            return status if status == "completed" else None

        await eventually(applied)
        refused = await http.post(f"/api/imports/{imp.id}/reject")
        assert refused.status_code == 409
    assert await balances(db) == {"E1": Decimal("8.00")}


def _cli_env(settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "COURIER_DATABASE_URL": settings.database_url,
        "COURIER_STORAGE_URL": settings.storage_url,
        "COURIER_NATS_URL": settings.nats_url,
        "COURIER_NATS_NAMESPACE": settings.nats_namespace,
        **extra,
    }


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    courier = str(Path(sys.executable).parent / "courier")
    proc = await asyncio.create_subprocess_exec(
        courier, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    # Rich wraps long lines to the terminal width; compare the words.
    return proc.returncode or 0, " ".join(out.decode().split())


async def test_cli_approve_and_reject(settings, db, bus, held, send) -> None:
    first = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    completed: list[ImportCompleted] = []

    async def on_completed(msg) -> None:  # type: ignore[no-untyped-def]
        completed.append(ImportCompleted.model_validate(json.loads(msg.data)))

    sub = await bus.broker.connection.subscribe(
        bus.subject("courier.import.completed"), cb=on_completed
    )
    env = _cli_env(settings)
    code, out = await _cli(env, "imports", "approve", str(first.id), "--by", "ops")
    assert code == 0, out
    assert "applied: completed" in out

    async def announced() -> bool:
        return bool(completed)

    # Downstream services hear of a CLI approval as of one made in the console.
    await eventually(announced)
    assert [(c.import_id, c.status, c.counts.created) for c in completed] == [
        (first.id, "completed", 1)
    ]
    await sub.unsubscribe()

    second = await send("leave_2.csv", leave_csv("E1,annual,9,2026-11-01"))
    code, out = await _cli(env, "imports", "reject", str(second.id))
    assert code == 0, out
    assert "change set discarded" in out
    code, out = await _cli(env, "imports", "approve", str(second.id))
    assert code == 1 and "not awaiting approval" in out
    assert await balances(db) == {"E1": Decimal("8.00")}


async def test_cli_approval_with_the_bus_down_changes_nothing(settings, db, held, send) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    env = _cli_env(settings, COURIER_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    code, out = await _cli(env, "imports", "approve", str(imp.id))
    assert code == 1, out
    assert "cannot reach the bus" in out and "nothing was changed" in out
    assert (await load_import(db, imp.id)).status == "awaiting_approval"
    assert await balances(db) == {}


class Stopped(Exception):
    """The process died here."""


async def test_an_approval_cut_off_after_applying_is_finished_by_the_importer(
    db, storage, tenant, held, send, monkeypatch
) -> None:
    imp = await send("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    announce = approval._announce

    async def dies(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Stopped

    monkeypatch.setattr(approval, "_announce", dies)
    with pytest.raises(Stopped):
        await approval.approve(db, storage, imp.id, "ops")
    cut = await load_import(db, imp.id)
    # The change set is applied and the decision on record, but not finished.
    assert (cut.status, cut.decision, cut.decided_by, cut.decided_at) == (
        "completed", "approve", "ops", None,
    )  # fmt: skip
    assert await balances(db) == {"E1": Decimal("8.00")}

    monkeypatch.setattr(approval, "_announce", announce)
    [decision] = await approval.carry_out_requests(db, storage)
    assert [e.subject for e in decision.events] == ["courier.import.completed"]
    done = await load_import(db, imp.id)
    assert done.decided_by == "ops" and done.decided_at is not None
    results = await storage.list(f"tenants/{tenant.slug}/outbound/results")
    assert any("leave_1" in o.key for o in results)
    async with db.session() as s:
        staged = list(await s.scalars(select(OutboxEvent.subject)))
    assert staged == ["courier.import.completed"]  # published by the relay if not at once
    assert await approval.carry_out_requests(db, storage) == []  # finished once
