"""End to end through real NATS, the database, moto's SNS and an aiosmtpd server: what
on-call and the customer's contacts receive when something goes wrong."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from courier.common.bus import Bus
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_incidents import ExpectationWindow, Incident, Notice
from courier.common.events import (
    AlertRaised,
    FileRejected,
    ImportFailed,
)
from courier.common.settings import Settings
from courier.notifier.rota import Rota
from tests.support.paging import Mailbox, Sns, body, imported
from tests.support.paging_fixtures import ANA, BEN, CONTACT
from tests.support.services import at_once, eventually, running


async def _windows(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(ExpectationWindow)) or 0)


async def _incidents(db: Database, kind: str) -> list[Incident]:
    async with db.session() as s:
        return list(await s.scalars(select(Incident).where(Incident.kind == kind)))


async def test_missing_file_pages_oncall_and_emails_the_contact_with_feed_and_expected_time(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    expected_feed: Feed,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
    mailbox: Mailbox,
) -> None:
    async with running("monitor", paging, clock), running("notifier", paging, clock):
        await eventually(lambda: _windows(db))
        clock.advance(hours=3, minutes=1)  # 11:01, the 09:00 window closed at 11:00

        texts = await eventually(lambda: at_once(sns.to(ANA)))
        mails = await eventually(
            lambda: at_once([m for m in mailbox.to(CONTACT) if "missing" in m["Subject"]])
        )

    assert "missing_file" in texts[0]
    assert "acme" in texts[0] and "leave-balances" in texts[0]
    assert "https://console.example/incidents/" in texts[0]
    text = body(mails[0])
    assert "leave-balances" in text
    assert "Expected at:   2026-12-01T09:00:00+00:00" in text
    assert all(mailbox.starttls), "mail went over a connection that was not upgraded to TLS"


async def test_a_file_within_its_window_raises_nothing_and_a_late_one_resolves_the_incident(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    expected_feed: Feed,
    rota: Rota,
    clock: ManualClock,
) -> None:
    async with running("monitor", paging, clock):
        await eventually(lambda: _windows(db))
        clock.set(clock.now().replace(hour=9, minute=30))
        await bus.publish(imported(expected_feed, tenant, "leave_20261201.csv", clock))

        async def satisfied() -> bool:
            async with db.session() as s:
                return bool(
                    await s.scalar(
                        select(func.count()).where(ExpectationWindow.state == "satisfied")
                    )
                )

        await eventually(satisfied)
        # The next day's file does not come; it arrives late, after the page.
        clock.advance(days=1, hours=1, minutes=31)  # 2026-12-02 11:01
        missing = await eventually(lambda: _incidents(db, "missing_file"))
        assert len(missing) == 1
        assert "2026-12-02 09:00" in missing[0].summary

        clock.advance(minutes=30)
        await bus.publish(imported(expected_feed, tenant, "leave_20261202.csv", clock))

        async def resolved() -> Incident | None:
            found = await _incidents(db, "missing_file")
            return found[0] if found and found[0].state == "resolved" else None

        incident = await eventually(resolved)
    async with db.session() as s:
        incident = await s.get(Incident, incident.id, populate_existing=True)
        await s.refresh(incident, ["notes", "timers"])
    assert any("late file leave_20261202.csv" in n.text for n in incident.notes)
    assert all(t.stopped_at is not None for t in incident.timers)


async def _window_states(db: Database) -> list[str]:
    async with db.session() as s:
        return list(
            await s.scalars(select(ExpectationWindow.state).order_by(ExpectationWindow.due_at))
        )


async def test_a_file_rejected_for_its_content_has_arrived_and_an_unrecognised_one_has_not(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    expected_feed: Feed,
    rota: Rota,
    clock: ManualClock,
) -> None:
    async with running("monitor", paging, clock):
        await eventually(lambda: _windows(db))
        clock.set(clock.now().replace(hour=9, minute=30))
        # A name no feed takes: rejected with no feed, as the importer reports it.
        wrong_name = dict(file_id=uuid.uuid4(), tenant_id=tenant.id, tenant=tenant.slug,
                          name="Leave_20261201.CSV", received_at=clock.now())  # fmt: skip
        await bus.publish(FileRejected(**wrong_name, reason="unrecognised file name"))
        await bus.publish(ImportFailed(**wrong_name, import_id=uuid.uuid4(),
                                       reason="unrecognised file name"))  # fmt: skip
        await eventually(lambda: _incidents(db, "file_rejected"))
        assert (await _window_states(db))[0] == "open"

        # The feed's file with a wrong header: it came, so the window has its file.
        clock.advance(minutes=15)
        import_id = uuid.uuid4()
        wrong_header = dict(file_id=uuid.uuid4(), tenant_id=tenant.id, tenant=tenant.slug,
                            name="leave_20261201.csv", feed_id=expected_feed.id,
                            feed=expected_feed.name, received_at=clock.now(),
                            import_id=import_id)  # fmt: skip
        reason = "wrong header: missing columns: as_of"
        await bus.publish(FileRejected(**wrong_header, reason=reason))
        await bus.publish(ImportFailed(**wrong_header, reason=reason))

        async def satisfied() -> bool:
            return (await _window_states(db))[0] == "satisfied"

        await eventually(satisfied)
    async with db.session() as s:
        window = await s.scalar(select(ExpectationWindow).order_by(ExpectationWindow.due_at))
    assert window is not None and window.file_id == wrong_header["file_id"]
    assert not await _incidents(db, "missing_file")


async def test_a_wrong_structure_file_pages_with_the_column_list(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
) -> None:
    reason = "wrong header: missing columns: balance_hours, as_of"
    async with running("monitor", paging, clock), running("notifier", paging, clock):
        await bus.publish(
            FileRejected(
                file_id=uuid.uuid4(),
                tenant_id=tenant.id,
                tenant=tenant.slug,
                name="leave_20261201.csv",
                reason=reason,
                details={
                    "missing": ["balance_hours", "as_of"],
                    "unexpected": ["hours"],
                    "expected": ["employee_id", "leave_type", "balance_hours", "as_of"],
                },
            )
        )
        texts = await eventually(lambda: at_once(sns.to(ANA)))
    assert "file_rejected" in texts[0]
    assert "leave_20261201.csv" in texts[0]
    assert "missing columns: balance_hours, as_of" in texts[0]
    assert "expected columns: employee_id, leave_type, balance_hours, as_of" in texts[0]


async def test_an_undeliverable_export_pages_when_its_window_closes(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
) -> None:
    deadline = clock.now() + timedelta(hours=1)
    async with running("monitor", paging, clock), running("notifier", paging, clock):
        await bus.publish(
            AlertRaised(
                kind="export_undeliverable",
                cause_key="timesheets|vendor-sftp",
                tenant_id=tenant.id,
                tenant=tenant.slug,
                summary="push of timesheets_20261201.csv to sftp.vendor.example failed: "
                "connection refused",
                details={
                    "export_id": str(uuid.uuid4()),
                    "spec": "timesheets",
                    "file": "timesheets_20261201.csv",
                    "deadline": deadline.isoformat(),
                },
            )
        )
        incident = (await eventually(lambda: _incidents(db, "export_undeliverable")))[0]
        # Still inside the window: the exporter may yet deliver, so nobody is paged.
        assert incident.paged_at is None
        async with db.session() as s:
            assert not await s.scalar(select(func.count()).select_from(Notice))

        clock.set(deadline + timedelta(seconds=1))
        texts = await eventually(lambda: at_once(sns.to(ANA)))
    assert "export_undeliverable" in texts[0]
    assert "timesheets_20261201.csv" in texts[0]
    assert "connection refused" in texts[0]


async def test_an_sla_breach_pages_once_across_a_monitor_restart_and_two_replicas(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
) -> None:
    async with (
        running("monitor", paging, clock),
        running("monitor", paging, clock),
        running("notifier", paging, clock),
    ):
        await bus.publish(
            AlertRaised(
                kind="export_build_failed",
                cause_key="timesheets|2026-11",
                tenant_id=tenant.id,
                tenant=tenant.slug,
                summary="timesheets export for 2026-11 could not be built: query timed out",
            )
        )
        await eventually(lambda: at_once(sns.to(ANA)))
        clock.advance(hours=6, minutes=1)
        breach = await eventually(lambda: at_once([t for t in sns.to(BEN) if "SLA BREACHED" in t]))
    # Restarted (fresh processes, same database), and time moves on.
    async with running("monitor", paging, clock), running("monitor", paging, clock):
        clock.advance(hours=1)
        incident = (await eventually(lambda: _incidents(db, "export_build_failed")))[0]

        async def later_pass() -> bool:
            # Both fresh replicas have run a pass after the move (the heartbeat check
            # runs last in each pass and stamps nothing, so use the windows plan).
            async with db.session() as s:
                return bool(await s.scalar(select(func.count()).select_from(Incident)))

        await eventually(later_pass)
    async with db.session() as s:
        breaches = await s.scalar(
            select(func.count()).where(
                Notice.reason == "sla_breach", Notice.incident_id == incident.id
            )
        )
    assert breaches == 1
    assert len(breach) == 1
    assert "platform" in breach[0]


async def test_a_page_goes_out_as_the_monitor_commits_it_to_a_notifier_that_looks_hourly(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
) -> None:
    hourly = paging.model_copy(update={"notifier_tick_seconds": 3600})
    async with running("notifier", hourly, clock), running("monitor", hourly, clock):
        await bus.publish(
            FileRejected(
                file_id=uuid.uuid4(),
                tenant_id=tenant.id,
                tenant=tenant.slug,
                name="leave_20261202.csv",
                reason="unrecognised file name",
            )
        )
        texts = await eventually(lambda: at_once(sns.to(ANA)))
    assert "leave_20261202.csv" in texts[0]
