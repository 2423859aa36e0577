"""Both providers are down when an incident pages: SMS (SNS in a moto server) and e-mail
(an aiosmtpd server), each stopped and started again on the same port by the test.

The monitor and the notifier run on the test's clock. The page and the contact's e-mail
are retried with their back-off while the providers are down; they come back just before
the last try, the page goes out then, and nobody acknowledges it, so it escalates per
the rota. Nothing is lost and nothing is sent twice: SMS per phone as moto's SNS backend
holds them, e-mails as the SMTP server received them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, or_, select

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Escalation, Incident, Notification
from courier.common.events import AlertRaised
from courier.common.outbox import stage
from courier.common.settings import Settings
from courier.notifier.rota import Rota, save_rota
from tests.support.paging import SNS_REGION, Mailbox, Sns, smtp_server
from tests.support.s3 import StoppableMoto
from tests.support.services import eventually, running

pytestmark = pytest.mark.timeout(180)

# Winter, so Europe/London is UTC.
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
# Numbers of this test alone: moto's SNS backend is shared by the whole run.
DIANA, ELIF, FINN = "+447700900301", "+447700900302", "+447700900303"
CONTACT = "vendor-it@acme.example"
ROTA = {
    "timezone": "Europe/London",
    "escalate_after_minutes": 15,
    "people": [
        {"name": "Diana", "phone": DIANA},
        {"name": "Elif", "phone": ELIF},
        {"name": "Finn", "phone": FINN},
    ],
    "rotations": [
        {"name": "primary", "start": "2026-11-30T09:00", "shift_days": 7,
         "people": ["Diana", "Finn"]},
        {"name": "secondary", "start": "2026-11-30T09:00", "shift_days": 7, "people": ["Elif"]},
    ],
}  # fmt: skip


class Smtp:
    """An SMTP server that can go away and come back on its port, with its certificate."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.received: list[Mailbox] = []
        self._stack: contextlib.ExitStack | None = None
        self.port = 0

    def start(self) -> Mailbox:
        self._stack = contextlib.ExitStack()
        box = self._stack.enter_context(smtp_server(self.directory, port=self.port or None))
        self.port = int(box.url.rsplit(":", 1)[1])
        self.received.append(box)
        return box

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def to(self, address: str) -> int:
        return sum(len(box.to(address)) for box in self.received)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Smtp]:
    server = Smtp(tmp_path / "smtp")
    server.directory.mkdir()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sns_moto() -> Iterator[StoppableMoto]:
    server = StoppableMoto().start()
    try:
        yield server
    finally:
        server.stop()


async def _due(db: Database, now: datetime) -> int:
    """Messages and escalations the notifier has still to act on at `now`."""
    async with db.session() as s:
        messages = await s.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                or_(
                    Notification.status.in_(("pending", "sending")),
                    (Notification.status == "failed") & (Notification.next_attempt_at <= now),
                )
            )
        )
        escalations = await s.scalar(
            select(func.count()).select_from(Escalation).where(Escalation.next_at <= now)
        )
    return int(messages or 0) + int(escalations or 0)


async def _settle(db: Database, clock: ManualClock) -> None:
    async def settled() -> bool:
        return await _due(db, clock.now()) == 0

    await eventually(settled, within=30)


async def test_pages_wait_out_a_provider_outage_then_escalate_none_lost_none_doubled(
    settings: Settings,
    db: Database,
    tenant: Tenant,
    smtp: Smtp,
    sns_moto: StoppableMoto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    # A provider that is down fails each try at once (botocore would try five times).
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    sns = Sns(sns_moto.url)
    box = smtp.start()
    paging = settings.model_copy(
        update={
            "sms_provider": "sns",
            "sns_region": SNS_REGION,
            "sns_endpoint_url": sns.url,
            "smtp_url": SecretStr(box.url),
            "smtp_ca_file": box.ca_file,
            "smtp_from": "courier@ops.example",
            "console_base_url": "https://console.example",
            "monitor_tick_seconds": 0.1,
            "notifier_tick_seconds": 0.1,
            "heartbeat_timeout_seconds": 10**9,
            "notify_max_attempts": 5,
        }
    )
    async with db.transaction() as s:
        await save_rota(s, Rota.model_validate(ROTA))
    clock = ManualClock(START)
    sent_before = {phone: len(sns.to(phone)) for phone in (DIANA, ELIF, FINN)}

    smtp.stop()
    sns_moto.stop()
    async with running("monitor", paging, clock), running("notifier", paging, clock):
        async with db.transaction() as s:
            stage(
                s,
                AlertRaised(
                    kind="source_unreachable",
                    cause_key=f"source:{uuid.uuid4()}",
                    tenant_id=tenant.id,
                    tenant=tenant.slug,
                    summary="source payroll-vendor unreachable: connection refused",
                    details={"contacts": [{"name": "Vendor IT", "email": CONTACT}]},
                ),
            )

        async def paged() -> list[Notification]:
            async with db.session() as s:
                rows = list(await s.scalars(select(Notification)))
            return rows if rows and all(n.attempts >= 1 for n in rows) else []

        await eventually(paged, within=60)
        # Both providers down: every try fails, with its back-off, up to just before
        # the last one (tries at 0, 1, 3 and 7 minutes; the fifth would be at 15).
        while clock.now() < START + timedelta(minutes=14, seconds=30):
            clock.advance(seconds=30)
            await _settle(db, clock)
        async with db.session() as s:
            waiting = list(await s.scalars(select(Notification)))
        assert {(n.channel, n.status, n.attempts) for n in waiting} == {
            ("sms", "failed", 4),
            ("email", "failed", 4),
        }, [(n.channel, n.status, n.attempts, n.error) for n in waiting]

        box = smtp.start()
        sns_moto.start()
        # The last try of each goes out; nobody acknowledges, so the page escalates at
        # 15 minutes, and nothing more happens before the next escalation is due.
        while clock.now() < START + timedelta(minutes=29):
            clock.advance(seconds=30)
            await _settle(db, clock)

    async with db.session() as s:
        incidents = list(await s.scalars(select(Incident)))
        log = list(await s.scalars(select(Notification).order_by(Notification.created_at)))
    assert [(i.kind, i.state) for i in incidents] == [("source_unreachable", "open")]
    # One page, one e-mail, one escalation: each in the delivery log once, and sent.
    assert sorted((n.channel, n.recipient, n.level, n.status) for n in log) == [
        ("email", CONTACT, 0, "sent"),
        ("sms", DIANA, 0, "sent"),
        ("sms", ELIF, 1, "sent"),
    ]
    sent = {phone: len(sns.to(phone)) - sent_before[phone] for phone in (DIANA, ELIF, FINN)}
    assert sent == {DIANA: 1, ELIF: 1, FINN: 0}
    assert smtp.to(CONTACT) == 1
