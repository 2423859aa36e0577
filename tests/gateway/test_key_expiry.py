"""SSH keys that expire: set by the operator, reminded to the partner, refused after."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncssh
import pytest
from sqlalchemy import select, update

from courier.common.bus import Bus
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.db.models_gateway import AccountKey
from courier.common.settings import Settings
from courier.gateway import admin
from courier.gateway.expiry import raise_key_expiry_alerts
from tests.gateway.conftest import PASSWORD, Partner, audit_soon, new_key
from tests.support.cli import cli_env, courier
from tests.support.clients import openssh_available
from tests.support.paging import Mailbox, body
from tests.support.paging_fixtures import CONTACT
from tests.support.services import eventually, running
from tests.support.staged import staged as staged_alerts

needs_openssh = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH and sshpass")


def _public(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pub"
    path.write_text(new_key(tmp_path / name))
    return path


async def _keys(db: Database, username: str = "p1") -> dict[str, AccountKey]:
    return {k.fingerprint: k for k in await admin.keys_of(db, username)}


async def _set_expiry(db: Database, when: datetime | None, username: str = "acme-payroll") -> None:
    async with db.transaction() as s:
        account = await admin.get_account(s, username)
        await s.execute(
            update(AccountKey).where(AccountKey.account_id == account.id).values(expires_at=when)
        )


# ------------------------------------------------------------------ operator


async def test_a_key_added_with_an_expiry_date_works_through_that_day(
    settings: Settings, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    env = cli_env(settings)
    await admin.create_account(db, tenant, "p1", password=PASSWORD)
    code, out = await courier(
        env, "accounts", "add-key", "p1", str(_public(tmp_path, "k")), "--expires", "2027-06-30"
    )
    assert code == 0, out
    # The last moment of 30 June on the tenant's clock.
    end = datetime(2027, 7, 1, tzinfo=ZoneInfo(tenant.timezone)).astimezone(UTC)
    assert f"expires {end:%Y-%m-%d %H:%M} UTC" in out
    [key] = (await _keys(db)).values()
    assert key.expires_at == end
    code, shown = await courier(env, "accounts", "show", "p1")
    assert key.fingerprint in shown and f"expires {end:%Y-%m-%d %H:%M} UTC" in shown
    code, as_json = await courier(env, "accounts", "show", "p1", "--json")
    [listed] = json.loads(as_json)["keys"]
    assert datetime.fromisoformat(listed["expires_at"]) == end

    code, out = await courier(
        env, "accounts", "add-key", "p1", str(_public(tmp_path, "k2")), "--expires", "2020-01-01"
    )
    assert code != 0 and "in the past" in out


async def test_without_a_date_a_key_gets_the_tenants_default_lifetime(
    settings: Settings, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    env = cli_env(settings)
    await admin.create_account(db, tenant, "p1", password=PASSWORD)
    await courier(env, "accounts", "add-key", "p1", str(_public(tmp_path, "forever")))
    code, out = await courier(env, "accounts", "policy", "acme", "--key-max-age-days", "365")
    assert code == 0 and "new SSH keys expire after 365 days" in out
    before = datetime.now(UTC)
    code, out = await courier(env, "accounts", "add-key", "p1", str(_public(tmp_path, "yearly")))
    assert code == 0, out
    lifetimes = sorted(
        (k.expires_at - before).days if k.expires_at else 0 for k in (await _keys(db)).values()
    )
    assert lifetimes == [0, 365]  # the key added before the policy keeps no expiry
    shown = (await courier(env, "accounts", "show", "p1"))[1]
    assert (
        "does not expire" in shown and f"expires {before + timedelta(days=365):%Y-%m-%d}" in shown
    )

    # A key the partner's system cannot rotate can be exempted, and only on purpose.
    code, out = await courier(
        env, "accounts", "add-key", "p1", str(_public(tmp_path, "hsm")), "--no-expiry"
    )
    assert code == 0 and "does not expire" in out, out
    lifetimes = sorted(
        (k.expires_at - before).days if k.expires_at else 0 for k in (await _keys(db)).values()
    )
    assert lifetimes == [0, 0, 365]
    code, out = await courier(
        env, "accounts", "add-key", "p1", str(_public(tmp_path, "x")), "--no-expiry",
        "--expires", "2030-01-01",
    )  # fmt: skip
    assert code == 2 and "exclude each other" in out


async def test_rotating_a_key_lets_the_old_ones_overlap_then_expire(
    settings: Settings, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    env = cli_env(settings)
    await admin.create_account(db, tenant, "p1", password=PASSWORD)
    now = datetime.now(UTC)
    old = await admin.add_key(db, "p1", _public(tmp_path, "old").read_text())
    soon = await admin.add_key(
        db, "p1", _public(tmp_path, "soon").read_text(), expires=now + timedelta(days=3)
    )
    code, out = await courier(
        env, "accounts", "rotate-key", "p1", str(_public(tmp_path, "new")), "--overlap-days", "14"
    )
    assert code == 0, out
    keys = await _keys(db)
    [new] = [k for f, k in keys.items() if f not in (old.fingerprint, soon.fingerprint)]
    assert f"key {new.fingerprint} added to p1; it does not expire" in out
    assert f"key {old.fingerprint} now expires" in out and "(did not expire)" in out
    assert soon.fingerprint not in out  # ends within the overlap already: left alone
    assert new.expires_at is None
    old_expiry = keys[old.fingerprint].expires_at
    assert old_expiry is not None and timedelta(days=14) <= old_expiry - now < timedelta(days=15)
    assert keys[soon.fingerprint].expires_at == soon.expires_at

    async with db.session() as s:
        [entry] = await s.scalars(select(ConsoleAuditEntry))
    assert entry.action == "sftp_key.rotate" and entry.actor.startswith("cli:")
    assert entry.details["added"] == new.fingerprint
    assert [r["fingerprint"] for r in entry.details["retired"]] == [old.fingerprint]

    code, out = await courier(env, "accounts", "rotate-key", "p1", str(tmp_path / "new.pub"))
    assert code != 0 and "already" in out


# ------------------------------------------------------------------ login


@needs_openssh
async def test_an_expired_key_is_refused_like_any_wrong_key_and_the_audit_says_why(
    partner: Partner,
    make_partner,  # type: ignore[no-untyped-def]
    clocked_gateway: Settings,
    gateway_clock: ManualClock,
    db: Database,
) -> None:
    await _set_expiry(db, gateway_clock.now() + timedelta(days=1))
    assert "inbound" in (await partner.openssh(["ls /"])).stdout

    gateway_clock.advance(days=1, seconds=1)
    expired = await partner.openssh(["ls /"])
    assert "inbound" not in expired.stdout
    [line] = await audit_soon(db, "login_failed")
    assert (line.username, line.reason) == ("acme-payroll", "key_expired")

    # What the partner sees is what a key we never had gets.
    stranger = await make_partner("acme-hr")
    wrong = await Partner(
        partner.username, partner.password, stranger.key_path, partner.port
    ).openssh(["ls /"])
    # The client's own lines ("Connection closed") vary in order and line ending.
    assert _refusal(expired.stderr) == _refusal(wrong.stderr)
    assert "Permission denied" in _refusal(expired.stderr)
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect()


async def test_a_key_only_account_with_an_expired_key_cannot_log_in(
    make_partner,  # type: ignore[no-untyped-def]
    clocked_gateway: Settings,
    gateway_clock: ManualClock,
    db: Database,
) -> None:
    robot = await make_partner("acme-robot", auth_policy="key", password=None)
    await _set_expiry(db, gateway_clock.now() - timedelta(minutes=1), "acme-robot")
    with pytest.raises(asyncssh.PermissionDenied):
        await robot.connect(password=None)
    assert [x.reason for x in await audit_soon(db, "login_failed")] == ["key_expired"]


# ------------------------------------------------------------------ reminders


async def test_a_key_is_reminded_at_30_7_and_1_days_each_once(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    expires = datetime(2027, 3, 31, 12, tzinfo=UTC)
    await admin.create_account(db, tenant, "p1", password=PASSWORD)
    key = await admin.add_key(
        db,
        "p1",
        _public(tmp_path, "k").read_text(),
        expires=expires,
        now=expires - timedelta(days=90),
    )

    async def at(before: timedelta) -> list[int]:
        alerts = await raise_key_expiry_alerts(db, expires - before)
        return [a.details["reminder_days"] for a in alerts]

    assert await at(timedelta(days=31)) == []
    assert await at(timedelta(days=30)) == [30]
    assert await at(timedelta(days=29)) == []
    assert await at(timedelta(days=7, hours=1)) == []
    assert await at(timedelta(days=6)) == [7]
    assert await at(timedelta(hours=23)) == [1]
    assert await at(timedelta(hours=1)) == []
    assert await at(-timedelta(hours=1)) == []  # expired: refused at login, no more reminders
    staged = await staged_alerts(db, "courier.alert.raised")
    assert [a.details["reminder_days"] for a in staged] == [30, 7, 1]
    assert {a.kind for a in staged} == {"ssh_key_expiring"}
    assert staged[0].details["fingerprint"] == key.fingerprint
    assert "expires in 30 days" in staged[0].summary and "p1" in staged[0].summary
    assert len({a.cause_key for a in staged}) == 3  # each reminder its own e-mail


async def test_a_key_added_a_few_days_before_expiry_gets_only_the_nearest_reminder(
    db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    now = datetime(2027, 3, 1, tzinfo=UTC)
    await admin.create_account(db, tenant, "p1", password=PASSWORD)
    await admin.create_account(db, tenant, "p2", password=PASSWORD)
    for user in ("p1", "p2"):
        await admin.add_key(
            db, user, _public(tmp_path, user).read_text(), expires=now + timedelta(days=5), now=now
        )
    await admin.update(db, "p2", enabled=False)
    [alert] = await raise_key_expiry_alerts(db, now)
    assert (alert.details["username"], alert.details["reminder_days"]) == ("p1", 7)


async def test_reminders_reach_the_partners_contacts_by_email(
    paging: Settings,
    db: Database,
    bus: Bus,
    tenant: Tenant,
    expected_feed: Feed,
    clock: ManualClock,
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    """Gateway, monitor and notifier as they run, on the test's clock."""
    await admin.create_account(db, tenant, "acme-payroll", password=PASSWORD)
    key = await admin.add_key(
        db, "acme-payroll", _public(tmp_path, "k").read_text(),
        expires=clock.now() + timedelta(days=31), now=clock.now(),
    )  # fmt: skip
    settings = paging.model_copy(update={"gateway_password_check_seconds": 0.1})
    async with (
        running("monitor", settings, clock),
        running("notifier", settings, clock),
        running("gateway", settings, clock),
    ):
        clock.advance(days=1, hours=1)

        async def reminded() -> list | None:  # type: ignore[type-arg]
            return [m for m in mailbox.to(CONTACT) if key.fingerprint in body(m)] or None

        [mail] = await eventually(reminded)
    assert "ssh key expiring" in mail["Subject"]
    assert "expires in 30 days" in body(mail) and "acme-payroll" in body(mail)
    assert (await _keys(db, "acme-payroll"))[key.fingerprint].reminded_days == 30


def _refusal(stderr: str) -> str:
    """What the gateway told the client: its refusal lines, whatever else the client says."""
    return "\n".join(sorted(line.strip() for line in stderr.splitlines() if "denied" in line))
