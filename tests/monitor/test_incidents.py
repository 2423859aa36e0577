"""Incident rules, called directly against the database: folding, classes, SLA timers
that fire once, heartbeats and messages that ran out of deliveries."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Incident, Notice, ServiceHeartbeat, SlaPolicy
from courier.common.events import FileRejected
from courier.common.settings import Settings
from courier.common.specs import Expectation
from courier.common.storage import Storage
from courier.console.incidents import incident_detail
from courier.monitor import expectations, heartbeats, signals, sla
from tests.support.incidents import act
from tests.support.paging import announced

POLICY = SlaPolicy()


def _rejected(tenant: Tenant, name: str, reason: str = "unrecognised file name") -> FileRejected:
    return FileRejected(
        file_id=uuid.uuid4(), tenant_id=tenant.id, tenant=tenant.slug, name=name, reason=reason
    )


async def _all(db: Database) -> list[Incident]:
    async with db.session() as s:
        return list(await s.scalars(select(Incident)))


async def test_the_same_cause_folds_into_one_incident_with_an_occurrence_count(
    db: Database, tenant: Tenant, clock: ManualClock
) -> None:
    first = _rejected(tenant, "leave.xlsx")
    await signals.on_file_rejected(db, first, clock.now(), POLICY)
    await signals.on_file_rejected(db, _rejected(tenant, "leave2.xlsx"), clock.now(), POLICY)
    await signals.on_file_rejected(db, first, clock.now(), POLICY)  # redelivered
    await signals.on_file_rejected(
        db, _rejected(tenant, "x.csv", "empty file: no header and no rows"), clock.now(), POLICY
    )
    incidents = sorted(await _all(db), key=lambda i: i.occurrences)
    assert [(i.occurrences, i.incident_class) for i in incidents] == [
        (1, "partner"),
        (2, "partner"),
    ]


async def test_platform_incidents_run_a_resolve_clock_and_partner_ones_a_contact_clock(
    db: Database, tenant: Tenant, clock: ManualClock
) -> None:
    await signals.on_file_rejected(db, _rejected(tenant, "a.csv"), clock.now(), POLICY)
    await signals.on_max_deliveries(
        db,
        {"stream": "COURIER_FILES", "consumer": "importer", "stream_seq": 7, "deliveries": 5},
        {"subject": "courier.file.received"},
        clock.now(),
        POLICY,
    )
    async with db.session() as s:
        incidents = list(await s.scalars(select(Incident)))
        for i in incidents:
            await s.refresh(i, ["timers"])
    by_kind = {i.kind: i for i in incidents}
    assert by_kind["max_deliveries"].incident_class == "platform"
    assert [t.kind for t in by_kind["max_deliveries"].timers] == ["resolve"]
    assert "courier.file.received" in by_kind["max_deliveries"].summary
    assert [t.kind for t in by_kind["file_rejected"].timers] == ["contact"]
    assert by_kind["file_rejected"].timers[0].due_at == clock.now() + timedelta(hours=6)


async def test_an_sla_timer_fires_once_with_two_replicas_and_after_a_restart(
    settings: Settings, db: Database, tenant: Tenant, clock: ManualClock
) -> None:
    await signals.on_file_rejected(db, _rejected(tenant, "a.csv"), clock.now(), POLICY)
    later = clock.advance(hours=7)
    replicas = [Database(settings.database_url) for _ in range(2)]
    try:
        fired = await asyncio.gather(*(sla.fire_due_timers(r, later) for r in replicas))
    finally:
        for r in replicas:
            await r.dispose()
    restarted = Database(settings.database_url)
    try:
        again = await sla.fire_due_timers(restarted, later + timedelta(hours=1))
    finally:
        await restarted.dispose()
    assert sorted(stage for run in fired for stage, _ in run) == ["sla_breach"]
    assert again == []
    async with db.session() as s:
        reasons = list(await s.scalars(select(Notice.reason).order_by(Notice.id)))
    assert reasons == ["opened", "sla_breach"]  # no warning after the breach


async def test_contacting_the_partner_stops_the_clock_and_their_response_starts_a_24h_one(
    db: Database, storage: Storage, tenant: Tenant, clock: ManualClock
) -> None:
    await signals.on_file_rejected(db, _rejected(tenant, "a.csv"), clock.now(), POLICY)
    (incident,) = await _all(db)
    clock.advance(hours=2)
    await act(db, storage, incident.id, "note", clock.now(), "ana", "called payroll IT",
              "contacted")  # fmt: skip
    clock.advance(hours=1)
    await act(db, storage, incident.id, "note", clock.now(), "ana", "they will resend",
              "partner_response")  # fmt: skip
    async with db.session() as s:
        detail = await incident_detail(s, incident.id)
    running = [t for t in detail.timers if t.stopped_at is None]
    assert [(t.kind, t.due_at) for t in running] == [("respond", clock.now() + timedelta(hours=24))]
    # The contact clock was stopped in time, so only the warning of the response clock is due.
    fired = await sla.fire_due_timers(db, clock.advance(hours=23, minutes=1))
    assert [stage for stage, _ in fired] == ["sla_warning"]


async def test_a_service_whose_heartbeat_stops_raises_an_incident_until_it_beats_again(
    db: Database, clock: ManualClock
) -> None:
    async with db.transaction() as s:
        s.add(ServiceHeartbeat(instance="importer@a", service="importer",
                               started_at=clock.now(), last_seen_at=clock.now()))  # fmt: skip
    silence = timedelta(seconds=90)
    assert await heartbeats.check_heartbeats(db, clock.now(), silence, POLICY) == ([], [])
    down, _ = await heartbeats.check_heartbeats(db, clock.advance(minutes=5), silence, POLICY)
    assert down == ["importer"]
    (incident,) = await _all(db)
    assert incident.kind == "service_down" and incident.incident_class == "platform"
    async with db.transaction() as s:
        (await s.get(ServiceHeartbeat, "importer@a")).last_seen_at = clock.now()  # type: ignore[union-attr]
    _, back = await heartbeats.check_heartbeats(db, clock.now(), silence, POLICY)
    assert back == ["importer"]
    (incident,) = await _all(db)
    assert incident.state == "resolved"


def test_windows_skip_holidays_and_weekends_in_the_feeds_time_zone() -> None:
    expect = Expectation(
        cron="0 9 * * *",
        timezone="Europe/London",
        skip_dates=[date(2026, 12, 25)],
        skip_weekends=True,
    )
    start = datetime(2026, 12, 21, tzinfo=UTC)
    due = list(expectations.due_times(expect, start, start + timedelta(days=8)))
    assert [d.strftime("%a %d %H:%M") for d in due] == [
        "Mon 21 09:00",
        "Tue 22 09:00",
        "Wed 23 09:00",
        "Thu 24 09:00",
        "Mon 28 09:00",
    ]
    summer = list(
        expectations.due_times(
            expect, datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC)
        )
    )
    assert [d.hour for d in summer] == [8]  # 09:00 BST


async def test_windows_are_laid_out_once_however_often_the_plan_runs(
    db: Database, expected_feed: object, clock: ManualClock
) -> None:
    horizon = timedelta(hours=36)
    first = await expectations.plan_windows(db, clock.now(), horizon)
    again = await expectations.plan_windows(db, clock.now(), horizon)
    later = await expectations.plan_windows(db, clock.advance(days=1), horizon)
    assert (first, again, later) == (2, 0, 1)
    async with db.session() as s:
        from courier.common.db.models_incidents import ExpectationWindow

        assert await s.scalar(select(func.count()).select_from(ExpectationWindow)) == 3


async def test_windows_closing_together_open_one_incident_each_across_workers_and_replicas(
    settings: Settings,
    db: Database,
    tenant: Tenant,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from courier.common.db.models import Feed
    from courier.common.db.models_incidents import ExpectationWindow

    monkeypatch.setattr(expectations, "BATCH", 4)  # many batches from a few windows
    async with db.transaction() as s:
        s.add_all(
            Feed(
                tenant_id=tenant.id,
                name=f"feed-{i}",
                kind="leave_balances",
                pattern=f"feed{i}_*.csv",
                spec={"expect": {"cron": "0 9 * * *", "timezone": "UTC"}},
            )
            for i in range(23)
        )
    await expectations.plan_windows(db, clock.now(), timedelta(hours=36))
    closes = clock.advance(days=2)
    replicas = [Database(settings.database_url) for _ in range(2)]
    try:
        closed = await asyncio.gather(
            *(expectations.close_due_windows(r, closes, POLICY, workers=3) for r in replicas)
        )
    finally:
        for r in replicas:
            await r.dispose()
    async with db.session() as s:
        windows = (
            await s.execute(select(ExpectationWindow.state, ExpectationWindow.incident_id))
        ).all()
        notice_ids = sorted(await s.scalars(select(Notice.id)))
    notices = len(notice_ids)
    incidents = await _all(db)
    # Each committed batch announced its own notices to the notifier, once.
    batches = await announced(db)
    assert sorted(i for b in batches for i in b) == notice_ids
    assert all(0 < len(b) <= 4 for b in batches)
    assert sum(closed) == len(windows) == 46  # two windows per feed (today, tomorrow)
    assert {state for state, _ in windows} == {"missed"}
    # Two windows of one feed fold into one incident, which the window that opened it
    # points at.
    assert len(incidents) == notices == 23
    assert sorted(i.occurrences for i in incidents) == [2] * 23
    assert {str(incident) for _, incident in windows if incident} == {str(i.id) for i in incidents}
