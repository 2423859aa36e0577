"""A partner's test file is not the file a window waits for, and its rejection pages nobody
(the partner's result file tells them)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_incidents import ExpectationWindow, Incident, SlaPolicy
from courier.common.events import FileRejected, ImportCompleted, ImportCounts
from courier.monitor import expectations, signals


async def test_a_test_file_does_not_satisfy_the_window_and_the_live_file_then_does(
    db: Database, expected_feed: Feed, clock: ManualClock
) -> None:
    await expectations.plan_windows(db, clock.now(), timedelta(hours=36))
    arrived = clock.now().replace(hour=9, minute=5)
    test = ImportCompleted(
        import_id=uuid.uuid4(), file_id=uuid.uuid4(), tenant_id=expected_feed.tenant_id,
        tenant="acme", feed_id=expected_feed.id, feed=expected_feed.name,
        name="test/leave_20261201.csv", status="completed", counts=ImportCounts(created=3),
        received_at=arrived, test=True,
    )  # fmt: skip
    assert await expectations.on_file_arrived(db, test, clock.now()) == []
    live = test.model_copy(
        update={"import_id": uuid.uuid4(), "file_id": uuid.uuid4(), "test": False,
                "name": "leave_20261201.csv"}
    )  # fmt: skip
    assert await expectations.on_file_arrived(db, live, clock.now()) == ["satisfied:leave-balances"]
    async with db.session() as s:
        satisfied = await s.scalar(
            select(ExpectationWindow.file_id).where(ExpectationWindow.state == "satisfied")
        )
    assert satisfied == live.file_id


async def test_a_rejected_test_file_opens_no_incident_and_a_rejected_live_file_does(
    db: Database, tenant: Tenant, clock: ManualClock
) -> None:
    def rejected(name: str, test: bool) -> FileRejected:
        return FileRejected(
            file_id=uuid.uuid4(), tenant_id=tenant.id, tenant=tenant.slug, name=name,
            reason="wrong header: missing columns: employee_id", test=test,
        )  # fmt: skip

    await signals.on_file_rejected(db, rejected("test/leave.csv", True), clock.now(), SlaPolicy())
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Incident)) == 0
    await signals.on_file_rejected(db, rejected("leave.csv", False), clock.now(), SlaPolicy())
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Incident)) == 1
