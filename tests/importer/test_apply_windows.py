"""Scheduled imports: a file outside its feed's apply window is checked at once, told when
it will be applied, and applied at the window in arrival order; a missed window pages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.common.calendars import BusinessCalendar
from courier.common.clock import ManualClock
from courier.common.db.models import Import, LeaveBalance
from courier.common.db.models_incidents import Incident, SlaPolicy
from courier.common.events import AlertRaised, ImportCompleted, ImportDecide
from courier.common.uow import UnitOfWork
from courier.importer import apply, approval
from courier.importer.schedule import window_for
from courier.importer.spec import ApplyWindow
from courier.importer.windows import apply_due
from courier.monitor import signals
from tests.importer.conftest import load_import
from tests.support.cli import cli_env, courier
from tests.support.fixtures_data import leave_csv
from tests.support.staged import staged

# Tuesday 1 December 2026, 10:00 in London (GMT): outside a 01:00-05:00 window.
TUESDAY_MORNING = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NEXT_WINDOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(TUESDAY_MORNING)


@pytest.fixture
def at_window(db, storage, clock: ManualClock) -> Callable[[], Awaitable[list[Import]]]:
    """One pass of the importer's timer at the clock's time."""

    async def _pass() -> list[Import]:
        return await apply_due(UnitOfWork(db, storage, clock))

    return _pass


async def balances(db) -> dict[str, Decimal]:
    async with db.session() as s:
        rows = await s.scalars(select(LeaveBalance))
        return {r.employee_id: Decimal(r.balance_hours) for r in rows}


async def result_text(storage, imp: Import) -> str:
    assert imp.result_key is not None
    return b"".join([c async for c in storage.get(imp.result_key)]).decode()


async def statuses(db, imp: Import) -> list[str]:
    events = await staged(db, "courier.import.completed")
    return [e.status for e in events if isinstance(e, ImportCompleted) and e.import_id == imp.id]


async def decide(db, storage, clock, imp: Import, decision: str = "approve"):
    command = ImportDecide(import_id=imp.id, tenant_id=imp.tenant_id, decision=decision, by="ops")
    return await approval.decide(command, UnitOfWork(db, storage, clock))


async def test_file_outside_the_window_is_checked_now_and_applied_in_order_at_the_window(
    db, storage, feed, arrive, at_window, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", apply_window="01:00-05:00")
    first = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    clock.advance(minutes=5)
    second_file = leave_csv("E1,annual,9,2026-11-01", "E2,sick,4,2026-11-01")
    second = await arrive("leave_2.csv", second_file)

    assert (first.status, first.apply_at, first.created) == ("scheduled", NEXT_WINDOW, 1)
    assert second.status == "scheduled" and second.apply_at == NEXT_WINDOW
    text = await result_text(storage, first)
    assert "accepted; checked, to be applied at 2026-12-02 01:00 GMT (Europe/London)" in text
    assert "would be: created 1" in text
    assert await balances(db) == {}

    clock.set(datetime(2026, 12, 2, 0, 59, tzinfo=UTC))
    assert await at_window() == []
    assert await balances(db) == {}

    clock.set(datetime(2026, 12, 2, 1, 0, 30, tzinfo=UTC))
    applied = await at_window()
    assert [i.file_name for i in applied] == ["leave_1.csv", "leave_2.csv"]
    assert await balances(db) == {"E1": Decimal("9.00"), "E2": Decimal("4.00")}
    done_first, done_second = [await load_import(db, i.id) for i in (first, second)]
    assert (done_first.status, done_second.status) == ("completed", "completed")
    assert "changed_since_check" not in done_first.details
    # Checked when E1 did not exist; at the window it updates what the first file made.
    assert (done_second.created, done_second.updated) == (1, 1)
    assert done_second.details["changed_since_check"].startswith("the data changed")
    assert await statuses(db, first) == ["scheduled", "completed"]

    # Exactly once: the next pass has nothing to do.
    assert await at_window() == []
    assert await statuses(db, second) == ["scheduled", "completed"]


async def test_file_inside_the_window_is_applied_at_once(db, feed, arrive, clock) -> None:
    await feed("leave", "leave_balances", "leave_*.csv",
               apply_window={"start": "09:00", "end": "17:00", "days": "business"})  # fmt: skip
    imp = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert (imp.status, imp.apply_at) == ("completed", None)
    assert await balances(db) == {"E1": Decimal("8.00")}


async def test_bad_file_outside_the_window_is_rejected_at_once(
    db, storage, feed, arrive, at_window, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv",
               apply_window="01:00-05:00", on_row_error="reject_file")  # fmt: skip
    bad = await arrive("leave_1.csv", leave_csv("E1,annual,lots,2026-11-01"))
    assert (bad.status, bad.apply_at) == ("rejected", None)
    assert "balance_hours: 'lots' is not a number" in await result_text(storage, bad)
    good = await arrive("leave_2.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert good.status == "scheduled"
    clock.set(NEXT_WINDOW)
    assert [i.id for i in await at_window()] == [good.id]
    assert (await load_import(db, bad.id)).status == "rejected"


async def test_business_day_window_skips_the_weekend_in_the_tenants_zone(
    feed, arrive, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv",
               apply_window={"start": "01:00", "end": "05:00", "days": "business"})  # fmt: skip
    clock.set(datetime(2026, 12, 4, 18, 0, tzinfo=UTC))  # Friday evening
    imp = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    assert imp.apply_at == datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday
    assert imp.details["apply_at_local"] == "2026-12-07 01:00 GMT (Europe/London)"


def test_window_follows_the_wall_clock_across_a_dst_change() -> None:
    window = ApplyWindow.model_validate("01:00-05:00")
    london = BusinessCalendar("Europe/London")
    before = window_for(window, london, datetime(2027, 3, 27, 12, 0, tzinfo=UTC))
    after = window_for(window, london, datetime(2027, 3, 28, 12, 0, tzinfo=UTC))
    assert before.opens_at == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 01:00 GMT
    assert after.opens_at == datetime(2027, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 BST
    overnight = window_for(
        ApplyWindow.model_validate("22:00-02:00"), london, datetime(2026, 12, 2, 1, tzinfo=UTC)
    )
    assert overnight.is_open(datetime(2026, 12, 2, 1, tzinfo=UTC))
    assert overnight.closes_at == datetime(2026, 12, 2, 2, tzinfo=UTC)


async def test_window_closing_with_a_file_waiting_raises_one_alert_and_it_waits_for_the_next(
    db, feed, arrive, at_window, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", apply_window="01:00-05:00")
    imp = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    # The importer was not running through the whole window.
    clock.set(datetime(2026, 12, 2, 5, 30, tzinfo=UTC))
    assert await at_window() == []
    clock.advance(minutes=10)
    assert await at_window() == []

    alerts = [a for a in await staged(db, "courier.alert.raised") if isinstance(a, AlertRaised)]
    [alert] = [a for a in alerts if a.kind == "import_window_missed"]
    assert alert.cause_key == f"import_window_missed:{imp.id}"
    assert "leave_1.csv (leave) was still waiting when its apply window closed" in alert.summary
    assert "2026-12-03 01:00 GMT (Europe/London)" in alert.summary
    # The monitor opens one incident for support from it.
    await signals.on_alert(db, alert, clock.now(), SlaPolicy())
    async with db.session() as s:
        [incident] = await s.scalars(select(Incident))
    assert (incident.kind, incident.feed, incident.file_name, incident.incident_class) == (
        "import_window_missed", "leave", "leave_1.csv", "platform",
    )  # fmt: skip
    waiting = await load_import(db, imp.id)
    assert (waiting.status, waiting.apply_at) == (
        "scheduled", datetime(2026, 12, 3, 1, 0, tzinfo=UTC),
    )  # fmt: skip
    assert await balances(db) == {}

    clock.set(datetime(2026, 12, 3, 1, 1, tzinfo=UTC))
    assert [i.id for i in await at_window()] == [imp.id]
    assert await balances(db) == {"E1": Decimal("8.00")}
    assert len([a for a in await staged(db, "courier.alert.raised")]) == len(alerts)


async def test_held_file_approved_outside_the_window_is_applied_at_the_window(
    db, storage, feed, arrive, at_window, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv",
               apply_window="01:00-05:00", hold_for_approval=True)  # fmt: skip
    first = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    second = await arrive("leave_2.csv", leave_csv("E1,annual,9,2026-11-01"))
    assert (first.status, second.status) == ("awaiting_approval", "awaiting_approval")

    decision = await decide(db, storage, clock, first)
    assert decision.outcome == "scheduled"
    assert "applies at 2026-12-02 01:00 GMT (Europe/London)" in decision.message
    assert await balances(db) == {}
    # The later file keeps its place behind the scheduled one.
    later = await decide(db, storage, clock, second)
    assert later.outcome == "scheduled"
    assert (await load_import(db, second.id)).apply_at == NEXT_WINDOW

    clock.set(NEXT_WINDOW)
    assert [i.id for i in await at_window()] == [first.id, second.id]
    assert await balances(db) == {"E1": Decimal("9.00")}
    done = await load_import(db, first.id)
    assert (done.status, done.decided_by) == ("completed", "ops")


async def test_held_file_approved_inside_the_window_is_applied_at_once(
    db, storage, feed, arrive, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv",
               apply_window="01:00-05:00", hold_for_approval=True)  # fmt: skip
    imp = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    clock.set(datetime(2026, 12, 2, 2, 0, tzinfo=UTC))
    assert (await decide(db, storage, clock, imp)).outcome == "applied"
    assert await balances(db) == {"E1": Decimal("8.00")}


async def test_a_file_the_guard_holds_at_the_window_keeps_later_files_behind_it(
    db, feed, arrive, at_window, clock
) -> None:
    guard = {"max_delete_share": 0.5, "min_records": 1}
    await feed("leave", "leave_balances", "leave_*.csv",
               apply_window="01:00-05:00", mode="full_sync", full_sync_guard=guard)  # fmt: skip
    clock.set(datetime(2026, 12, 1, 2, 0, tzinfo=UTC))  # inside the window
    rows = [f"E{n},annual,8,2026-11-01" for n in range(1, 4)]
    assert (await arrive("leave_0.csv", leave_csv(*rows))).status == "completed"
    clock.set(TUESDAY_MORNING)
    first = await arrive("leave_1.csv", leave_csv(*rows, "E4,annual,1,2026-11-01"))
    # The second file holds every record, so on its own it would pass the guard.
    everyone = [f"E{n},annual,2,2026-11-01" for n in range(4, 12)]
    second = await arrive("leave_2.csv", leave_csv(*rows, *everyone))
    assert (first.status, second.status) == ("scheduled", "scheduled")
    # Before the window, records the files do not hold appear (another system's sync).
    async with db.transaction() as s:
        [done] = await s.scalars(select(Import).where(Import.file_name == "leave_0.csv"))
        for n in range(5, 12):
            s.add(LeaveBalance(tenant_id=done.tenant_id, feed_id=done.feed_id,
                               employee_id=f"E{n}", leave_type="annual",
                               balance_hours=Decimal(1), as_of=date(2026, 11, 1)))  # fmt: skip

    clock.set(NEXT_WINDOW)
    await at_window()
    held, behind = [await load_import(db, i.id) for i in (first, second)]
    assert held.status == "awaiting_approval"
    assert held.details["held"].startswith("full sync would delete 7 of 10 records")
    # Not applied before it: held too, to be decided after the first.
    assert (behind.status, behind.details["held"]) == (
        "awaiting_approval", "an earlier file of this feed awaits approval",
    )  # fmt: skip
    assert await balances(db) == {**{f"E{n}": Decimal("8.00") for n in range(1, 4)},
                                  **{f"E{n}": Decimal("1.00") for n in range(5, 12)}}  # fmt: skip


async def test_a_file_arriving_in_the_window_waits_behind_one_still_scheduled(
    db, feed, arrive, at_window, clock
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", apply_window="01:00-05:00")
    first = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    clock.set(datetime(2026, 12, 2, 1, 0, 5, tzinfo=UTC))  # the timer has not passed yet
    second = await arrive("leave_2.csv", leave_csv("E1,annual,9,2026-11-01"))
    assert (second.status, second.apply_at) == ("scheduled", NEXT_WINDOW)
    assert [i.id for i in await at_window()] == [first.id, second.id]
    assert await balances(db) == {"E1": Decimal("9.00")}


async def test_same_content_as_a_scheduled_file_is_a_duplicate(feed, arrive) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", apply_window="01:00-05:00")
    data = leave_csv("E1,annual,8,2026-11-01")
    first = await arrive("leave_1.csv", data)
    again = await arrive("leave_1_again.csv", data)
    assert again.status == "duplicate"
    assert again.details["duplicate_of"] == str(first.id)


def test_apply_window_forms_are_checked() -> None:
    assert ApplyWindow.model_validate("01:00 - 05:00").label() == "01:00-05:00 every day"
    for bad in ("01:00", "05:00-05:00", {"start": "01:00", "end": "05:00", "timezone": "Mars/X"}):
        with pytest.raises(ValueError):
            ApplyWindow.model_validate(bad)


class Stopped(Exception):
    """The process died here."""


async def test_a_window_pass_cut_off_half_way_applies_nothing_and_the_next_applies_once(
    db, storage, feed, arrive, at_window, clock, monkeypatch
) -> None:
    await feed("leave", "leave_balances", "leave_*.csv", apply_window="01:00-05:00")
    imp = await arrive("leave_1.csv", leave_csv("E1,annual,8,2026-11-01"))
    clock.set(NEXT_WINDOW)
    write_result = apply.write_result

    async def dies(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Stopped

    monkeypatch.setattr(apply, "write_result", dies)
    assert await at_window() == []
    assert (await load_import(db, imp.id)).status == "scheduled"
    assert await balances(db) == {}

    monkeypatch.setattr(apply, "write_result", write_result)
    # Two replicas' timers at once: one applies it, the other finds nothing left.
    first, second = await asyncio.gather(at_window(), at_window())
    assert [i.id for i in first + second] == [imp.id]
    assert await balances(db) == {"E1": Decimal("8.00")}
    assert await statuses(db, imp) == ["scheduled", "completed"]


WINDOW_YAML = """\
tenant: acme
feeds:
  - name: leave
    kind: leave_balances
    pattern: "leave_*.csv"
    apply_window: {{start: {start}, end: "02:00", days: business}}
"""


async def test_apply_window_is_declared_in_yaml_and_shown_by_the_cli(
    settings, tenant, tmp_path: Path
) -> None:
    env = cli_env(settings)
    spec = tmp_path / "acme.yaml"
    # Unquoted, YAML reads 22:00 as a number: refused, saying what to write.
    spec.write_text(WINDOW_YAML.format(start="22:00"))
    code, out = await courier(env, "feeds", "apply", str(spec))
    assert code == 1 and 'write the time in quotes, e.g. "22:30"' in out, out
    spec.write_text(WINDOW_YAML.format(start='"22:00"'))
    code, out = await courier(env, "feeds", "apply", str(spec))
    assert code == 0, out
    code, out = await courier(env, "feeds", "show", "leave")
    assert code == 0, out
    assert "apply window: 22:00-02:00 business days (Europe/London)" in out
    assert "scheduled files: 0" in out
