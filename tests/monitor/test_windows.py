"""Expected-file windows go by the feed the importer chose and by when the file arrived,
called directly against the database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from courier.cli import provision
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_incidents import ExpectationWindow, Incident, SlaPolicy
from courier.common.events import FileRejected, ImportCompleted, ImportCounts
from courier.monitor import expectations

HORIZON = timedelta(hours=36)


def _imported(feed: Feed, received_at: datetime, **over: Any) -> ImportCompleted:
    values: dict[str, Any] = {
        "import_id": uuid.uuid4(),
        "file_id": uuid.uuid4(),
        "tenant_id": feed.tenant_id,
        "tenant": "acme",
        "feed_id": feed.id,
        "feed": feed.name,
        "name": f"leave_{received_at:%Y%m%d}.csv",
        "status": "completed",
        "counts": ImportCounts(),
        "received_at": received_at,
        **over,
    }
    return ImportCompleted(**values)


async def _windows(db: Database) -> list[ExpectationWindow]:
    async with db.session() as s:
        return list(await s.scalars(select(ExpectationWindow).order_by(ExpectationWindow.due_at)))


async def _incidents(db: Database) -> list[Incident]:
    async with db.session() as s:
        found = list(await s.scalars(select(Incident).where(Incident.kind == "missing_file")))
        for i in found:
            await s.refresh(i, ["notes"])
        return found


async def test_a_held_file_satisfies_its_window_and_its_approval_the_next_day_does_not_satisfy_that_days(  # noqa: E501
    db: Database, expected_feed: Feed, clock: ManualClock
) -> None:
    await expectations.plan_windows(db, clock.now(), HORIZON)
    clock.set(clock.now().replace(hour=9, minute=10))
    held = _imported(expected_feed, clock.now(), status="awaiting_approval")
    assert await expectations.on_file_arrived(db, held, clock.now()) == ["satisfied:leave-balances"]
    # Approved a day later: the importer reports the same file again, now completed.
    clock.advance(days=1, minutes=20)
    approved = held.model_copy(update={"status": "completed", "occurred_at": clock.now()})
    assert await expectations.on_file_arrived(db, approved, clock.now()) == []
    first, second = await _windows(db)
    assert (first.state, first.file_id) == ("satisfied", held.file_id)
    assert (second.state, second.file_id) == ("open", None)


async def test_the_feed_is_found_by_name_when_the_event_carries_no_feed_id(
    db: Database, expected_feed: Feed, clock: ManualClock
) -> None:
    await expectations.plan_windows(db, clock.now(), HORIZON)
    event = _imported(expected_feed, clock.now().replace(hour=9, minute=5), feed_id=None)
    assert await expectations.on_file_arrived(db, event, clock.now()) == [
        "satisfied:leave-balances"
    ]


async def test_the_importers_choice_of_feed_decides_not_the_file_name(
    db: Database, tenant: Tenant, expected_feed: Feed, clock: ManualClock
) -> None:
    # Both patterns take leave_20261201.csv; the importer gave it to `any-leave`.
    other = await provision.upsert_feed(
        db, tenant, "any-leave", "leave_balances", "leave_*.csv", {}
    )
    await expectations.plan_windows(db, clock.now(), HORIZON)
    event = _imported(other, clock.now().replace(hour=9, minute=5), name="leave_20261201.csv")
    assert await expectations.on_file_arrived(db, event, clock.now()) == []
    unrecognised = FileRejected(
        file_id=uuid.uuid4(), tenant_id=tenant.id, tenant=tenant.slug,
        name="leave_20261201.csv.bak", reason="unrecognised file name",
        received_at=clock.now().replace(hour=9, minute=6),
    )  # fmt: skip
    assert await expectations.on_file_arrived(db, unrecognised, clock.now()) == []
    assert {w.state for w in await _windows(db)} == {"open"}


async def test_a_file_that_came_in_time_but_was_imported_after_the_close_resolves_with_a_note(
    db: Database, expected_feed: Feed, clock: ManualClock
) -> None:
    await expectations.plan_windows(db, clock.now(), HORIZON)
    arrived = clock.now().replace(hour=10, minute=55)
    # The import is still running when the window closes at 11:00.
    clock.set(arrived.replace(hour=11, minute=0))
    await expectations.close_due_windows(db, clock.now(), SlaPolicy())
    (incident,) = await _incidents(db)
    assert incident.state == "open"

    clock.advance(minutes=10)
    done = await expectations.on_file_arrived(db, _imported(expected_feed, arrived), clock.now())
    assert done == ["resolved:leave-balances"]
    (incident,) = await _incidents(db)
    assert incident.state == "resolved"
    assert any(
        "arrived 2026-12-01 10:55 UTC, within the window due 2026-12-01 09:00 UTC" in n.text
        for n in incident.notes
    )
    assert (await _windows(db))[0].satisfied_at == arrived
