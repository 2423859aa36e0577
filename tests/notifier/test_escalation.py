"""Paging through moto's SNS: escalation when nobody acknowledges, none when someone
does, one digest when one person has many pages, and the delivery log of each."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Incident, Notification, SlaPolicy
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.monitor.incidents import (
    Signal,
    add_notices,
    notice,
    publish_open_counts,
    record_signals,
)
from courier.notifier.deliver import Channels, escalate_due, route_notices, send_due
from courier.notifier.mail import smtp_mail
from courier.notifier.rota import Rota, save_rota
from courier.notifier.sms import SmsSender, sms_sender
from tests.support.incidents import act
from tests.support.paging import Mailbox, Sns, announced, body
from tests.support.paging_fixtures import ANA, BEN, CAI, CONTACT, ROTA

SMS_SENT = "courier_notifications_total"


async def _open(db: Database, tenant: Tenant, clock: ManualClock, n: int = 1) -> list[Incident]:
    signals = [
        Signal(
            kind="file_rejected",
            cause_key=f"{tenant.id}|reason-{i}",
            event_key=f"test:{uuid.uuid4()}",
            summary=f"file leave_{i}.csv rejected: unrecognised file name",
            tenant_id=tenant.id,
            tenant=tenant.slug,
            file_name=f"leave_{i}.csv",
            contacts=[{"name": "Payroll IT", "email": CONTACT}],
        )
        for i in range(n)
    ]
    async with db.transaction() as s:
        return await record_signals(s, signals, clock.now(), SlaPolicy())


async def _pass(db: Database, clock: ManualClock, rota: Rota, settings: Settings,
                channels: Channels) -> None:  # fmt: skip
    """One round of the notifier: route what was announced, escalate, send."""
    for ids in await announced(db):
        await route_notices(db, clock.now(), rota, settings, ids)
    await escalate_due(db, clock.now(), rota, settings)
    await send_due(db, clock.now(), channels, settings, clock)


def _channels(settings: Settings) -> Channels:
    return Channels(sms=sms_sender(settings), mail=smtp_mail(settings), retry_wait=0.01)


async def test_an_unacknowledged_page_escalates_to_the_next_person_in_the_rota(
    paging: Settings, db: Database, tenant: Tenant, rota: Rota, clock: ManualClock, sns: Sns
) -> None:
    channels = _channels(paging)
    sent_before = REGISTRY.get_sample_value(SMS_SENT, {"channel": "sms", "outcome": "sent"}) or 0
    await _open(db, tenant, clock)
    await _pass(db, clock, rota, paging, channels)
    assert len(sns.to(ANA)) == 1 and sns.to(BEN) == []
    assert REGISTRY.get_sample_value(SMS_SENT, {"channel": "sms", "outcome": "sent"}) == (
        sent_before + 1
    )
    # The dashboard's open-incidents gauge, as the monitor sets it.
    assert (await publish_open_counts(db))[("partner", "open")] == 1
    assert (
        REGISTRY.get_sample_value("courier_incidents_open", {"class": "partner", "state": "open"})
        == 1
    )

    clock.advance(minutes=16)
    await _pass(db, clock, rota, paging, channels)
    assert len(sns.to(BEN)) == 1
    assert "ESCALATED" in sns.to(BEN)[0] and "Not acknowledged by Ana" in sns.to(BEN)[0]

    clock.advance(minutes=16)
    await _pass(db, clock, rota, paging, channels)
    assert len(sns.to(CAI)) == 1
    # Nobody answered: the chain starts again at the top.
    clock.advance(minutes=16)
    await _pass(db, clock, rota, paging, channels)
    assert (len(sns.to(ANA)), len(sns.to(BEN)), len(sns.to(CAI))) == (2, 1, 1)
    assert "Not acknowledged by Cai" in sns.to(ANA)[1]


@pytest.mark.parametrize("rounds", [1, 2])
async def test_paging_stops_after_the_rotas_rounds(
    paging: Settings, db: Database, tenant: Tenant, clock: ManualClock, sns: Sns, rounds: int
) -> None:
    rota = Rota.model_validate({**ROTA, "escalation_rounds": rounds})
    async with db.transaction() as s:
        await save_rota(s, rota)
    channels = _channels(paging)
    await _open(db, tenant, clock)
    for _ in range(3 * rounds + 4):
        await _pass(db, clock, rota, paging, channels)
        clock.advance(minutes=16)
    assert (len(sns.to(ANA)), len(sns.to(BEN)), len(sns.to(CAI))) == (rounds, rounds, rounds)


async def test_acknowledging_a_page_stops_its_escalation(
    paging: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
) -> None:
    channels = _channels(paging)
    (incident,) = await _open(db, tenant, clock)
    await _pass(db, clock, rota, paging, channels)
    clock.advance(minutes=5)
    await act(db, storage, incident.id, "ack", clock.now(), "ana")
    clock.advance(minutes=30)
    await _pass(db, clock, rota, paging, channels)
    assert len(sns.to(ANA)) == 1
    assert sns.to(BEN) == [] and sns.to(CAI) == []


async def test_a_partner_incident_emails_the_contacts_over_starttls_and_logs_each_delivery(
    paging: Settings,
    db: Database,
    tenant: Tenant,
    rota: Rota,
    clock: ManualClock,
    sns: Sns,
    mailbox: Mailbox,
) -> None:
    (incident,) = await _open(db, tenant, clock)
    await _pass(db, clock, rota, paging, _channels(paging))
    (mail,) = mailbox.to(CONTACT)
    assert "leave_0.csv" in mail["Subject"] and "acme" in mail["Subject"]
    assert f"https://console.example/incidents/{incident.id}" in body(mail)
    assert mailbox.starttls == [True]
    async with db.session() as s:
        log = list(await s.scalars(select(Notification).order_by(Notification.channel)))
    assert [(n.channel, n.status, n.provider) for n in log] == [
        ("email", "sent", "smtp"),
        ("sms", "sent", "sns"),
    ]
    assert all(n.provider_id for n in log)


async def test_many_pages_at_once_reach_one_person_as_one_digest(
    paging: Settings, db: Database, tenant: Tenant, rota: Rota, clock: ManualClock, sns: Sns
) -> None:
    await _open(db, tenant, clock, n=50)
    await _pass(db, clock, rota, paging, _channels(paging))
    (digest,) = sns.to(ANA)
    assert digest.startswith("COURIER 50 pages: 50 file_rejected across 1 tenant")
    async with db.session() as s:
        statuses = set(
            await s.scalars(select(Notification.status).where(Notification.channel == "sms"))
        )
    assert statuses == {"sent"}


class _Down:
    name = "sns"

    async def send(self, phone: str, text: str) -> str:
        raise ConnectionError("provider unreachable")


async def test_a_provider_outage_is_retried_and_recorded_in_the_delivery_log(
    paging: Settings, db: Database, tenant: Tenant, rota: Rota, clock: ManualClock, sns: Sns
) -> None:
    down: SmsSender = _Down()
    await _open(db, tenant, clock)
    await _pass(db, clock, rota, paging, Channels(sms=down, mail=None, retry_wait=0.01))
    async with db.session() as s:
        (sms,) = await s.scalars(select(Notification).where(Notification.channel == "sms"))
    assert sms.status == "failed" and "provider unreachable" in (sms.error or "")

    # The provider is back; the next pass after the back-off sends it.
    clock.advance(minutes=2)
    await _pass(db, clock, rota, paging, _channels(paging))
    assert len(sns.to(ANA)) == 1
    async with db.session() as s:
        sms = await s.get(Notification, sms.id, populate_existing=True)
    assert sms is not None and sms.status == "sent" and sms.attempts == 2


async def test_pages_keep_to_the_rate_limit_per_incident(
    paging: Settings, db: Database, tenant: Tenant, rota: Rota, clock: ManualClock, sns: Sns
) -> None:
    (incident,) = await _open(db, tenant, clock)
    async with db.transaction() as s:
        inc = await s.get(Incident, incident.id)
        assert inc is not None
        await add_notices(s, [notice(inc, "opened", clock.now()) for _ in range(10)])
    settings = paging.model_copy(update={"notify_max_per_hour": 3, "sms_digest_threshold": 100})
    await _pass(db, clock, rota, settings, _channels(settings))
    assert len(sns.to(ANA)) == 3
