"""OpenPGP keys nearing expiry are reminded like SSH keys: 30, 7 and 1 days before, once
each, to the partner's contacts."""

from __future__ import annotations

from datetime import timedelta
from email.message import Message

from courier.common import pgp_keys
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_incidents import incident_class
from courier.common.settings import Settings
from courier.gateway.expiry import raise_key_expiry_alerts
from tests.support.paging import Mailbox, body
from tests.support.paging_fixtures import CONTACT
from tests.support.pgp import PASSPHRASE, GpgHome, KeyPair
from tests.support.services import eventually, running
from tests.support.staged import staged as staged_alerts


async def test_a_key_is_reminded_at_30_7_and_1_days_each_once(
    db: Database, tenant: Tenant, partner_gpg: GpgHome
) -> None:
    imported = await pgp_keys.import_key(db, "acme", partner_gpg.export(), actor="t")
    expires = imported.key.expires_at
    assert expires is not None

    async def at(before: timedelta) -> list[int]:
        alerts = await pgp_keys.raise_pgp_key_expiry_alerts(db, expires - before)
        return [a.details["reminder_days"] for a in alerts]

    assert await at(timedelta(days=31)) == []
    assert await at(timedelta(days=30)) == [30]
    assert await at(timedelta(days=29)) == []
    assert await at(timedelta(days=7, hours=1)) == []
    assert await at(timedelta(days=6)) == [7]
    assert await at(timedelta(hours=23)) == [1]
    assert await at(timedelta(hours=1)) == []
    assert await at(-timedelta(hours=1)) == []  # expired: no more reminders
    staged = await staged_alerts(db, "courier.alert.raised")
    assert [a.details["reminder_days"] for a in staged] == [30, 7, 1]
    assert {a.kind for a in staged} == {"pgp_key_expiring"}
    assert incident_class("pgp_key_expiring") == "partner"
    first = staged[0]
    assert first.details["fingerprint"] == partner_gpg.fingerprint
    assert "expires in 30 days" in first.summary and "Acme Payroll" in first.summary
    assert "send support the key with its expiry extended" in first.summary
    assert len({a.cause_key for a in staged}) == 3  # each reminder its own e-mail
    assert "BEGIN PGP" not in str([a.model_dump() for a in staged])


async def test_a_key_arriving_close_to_expiry_gets_only_the_nearest_reminder(
    db: Database, tenant: Tenant, tenant_keys: KeyPair
) -> None:
    imported = await pgp_keys.import_key(
        db, "acme", tenant_keys.secret, owner="courier", passphrase=PASSPHRASE, actor="t"
    )
    assert imported.key.expires_at is not None
    now = imported.key.expires_at - timedelta(days=5)
    [alert] = await pgp_keys.raise_pgp_key_expiry_alerts(db, now)
    assert alert.details["reminder_days"] == 7 and alert.details["owner"] == "courier"
    assert alert.summary.startswith(f"Courier's OpenPGP key {tenant_keys.fingerprint} for acme")
    assert await pgp_keys.raise_pgp_key_expiry_alerts(db, now + timedelta(hours=1)) == []
    # The SSH key check of the same pass does not see OpenPGP keys.
    assert await raise_key_expiry_alerts(db, now) == []


async def test_reminders_reach_the_partners_contacts_by_email(
    paging: Settings,
    db: Database,
    tenant: Tenant,
    expected_feed: Feed,
    partner_gpg: GpgHome,
    mailbox: Mailbox,
) -> None:
    """Gateway (which checks credentials' expiry), monitor and notifier as they run,
    on a clock a day before the first reminder."""
    imported = await pgp_keys.import_key(db, "acme", partner_gpg.export(), actor="t")
    assert imported.key.expires_at is not None
    clock = ManualClock(imported.key.expires_at - timedelta(days=31))
    settings = paging.model_copy(update={"gateway_password_check_seconds": 0.1})
    async with (
        running("monitor", settings, clock),
        running("notifier", settings, clock),
        running("gateway", settings, clock),
    ):
        clock.advance(days=1, hours=1)

        async def reminded() -> list[Message] | None:
            return [m for m in mailbox.to(CONTACT) if partner_gpg.fingerprint in body(m)] or None

        [mail] = await eventually(reminded)
    assert "pgp key expiring" in mail["Subject"]
    assert "expires in 30 days" in body(mail) and "Acme Payroll" in body(mail)
    [key] = await pgp_keys.list_keys(db, "acme")
    assert key.reminded_days == 30
