"""`courier accounts …` and `courier gateway …` as an operator uses them, and password policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from courier.cli.main import app
from courier.common import outbox
from courier.common.db.engine import Database, is_sqlite
from courier.common.db.models import SftpAccount, Tenant
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import AlertRaised, Event
from courier.common.passwords import Strength, strength_problems
from courier.common.settings import get_settings
from courier.gateway import admin
from courier.gateway.expiry import raise_expiry_alerts

PASSWORD_LINE = re.compile(r"password for (\S+) \(shown once\): (\S+)")


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[type-arg]
    monkeypatch.setenv("COURIER_DATABASE_URL", database_url)
    monkeypatch.setenv("COURIER_GATEWAY_HOST_KEY_DIR", str(tmp_path / "hostkeys"))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, input: str | None = None, ok: bool = True) -> str:
        result = runner.invoke(app, list(args), input=input)
        output = result.stdout + (result.stderr if result.stderr_bytes else "")
        assert (result.exit_code == 0) == ok, output
        return output

    run("tenants", "create", "acme")
    yield run
    get_settings.cache_clear()


def _pub(tmp_path: Path, name: str, alg: str = "ssh-ed25519", size: int | None = None) -> Path:
    key = (
        asyncssh.generate_private_key(alg, key_size=size)
        if size
        else asyncssh.generate_private_key(alg)
    )
    path = tmp_path / f"{name}.pub"
    path.write_bytes(key.export_public_key())
    return path


def test_created_account_gets_a_generated_password_that_meets_the_policy(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = cli(
        "accounts", "create", "acme-payroll", "--tenant", "acme",
        "--key", str(_pub(tmp_path, "k")), "--allow", "203.0.113.0/24",
    )  # fmt: skip
    [(user, password)] = PASSWORD_LINE.findall(out)
    assert user == "acme-payroll"
    assert strength_problems(password, Strength(14, 3)) == []
    shown = cli("accounts", "show", "acme-payroll")
    assert "password+key" in shown and "203.0.113.0/24" in shown and "SHA256:" in shown
    assert password not in shown
    listed = cli("accounts", "list")
    assert "acme-pay" in listed and "enabled" in listed


def test_weak_and_reused_passwords_are_refused(cli) -> None:  # type: ignore[no-untyped-def]
    first = PASSWORD_LINE.findall(cli("accounts", "create", "p1", "--tenant", "acme"))[0][1]
    weak = cli("accounts", "set-password", "p1", "--stdin", input="short\n", ok=False)
    assert "password too weak" in weak and "at least 14 characters" in weak
    same_class = cli("accounts", "set-password", "p1", "--stdin", input="a" * 20 + "\n", ok=False)
    assert "character classes" not in same_class and "at least 3 of" in same_class
    reused = cli("accounts", "set-password", "p1", "--stdin", input=first + "\n", ok=False)
    assert "used before" in reused
    cli("accounts", "set-password", "p1", "--stdin", input="Brand-New-Passw0rd\n")
    again = cli("accounts", "set-password", "p1", "--stdin", input=first + "\n", ok=False)
    assert "used before" in again
    rotated = PASSWORD_LINE.findall(cli("accounts", "rotate-password", "p1"))[0][1]
    assert rotated not in (first, "Brand-New-Passw0rd")


def test_short_rsa_and_unknown_keys_are_refused(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "create", "p1", "--tenant", "acme")
    short = cli("accounts", "add-key", "p1", str(_pub(tmp_path, "r", "ssh-rsa", 2048)), ok=False)
    assert "at least 3072 bits" in short
    assert "not an OpenSSH public key" in cli("accounts", "add-key", "p1", "nonsense", ok=False)
    out = cli("accounts", "add-key", "p1", str(_pub(tmp_path, "r3", "ssh-rsa", 3072)))
    fingerprint = re.search(r"(SHA256:\S+)", out).group(1)  # type: ignore[union-attr]
    cli("accounts", "remove-key", "p1", fingerprint)
    assert fingerprint not in cli("accounts", "show", "p1")


def test_allowlist_disable_and_policy_commands(cli) -> None:  # type: ignore[no-untyped-def]
    cli("accounts", "create", "p1", "--tenant", "acme", "--read-only")
    assert "rights: read" in cli("accounts", "show", "p1")
    assert "192.0.2.7/32" in cli("accounts", "allow-ip", "p1", "192.0.2.7")
    assert "2001:db8::/32" in cli("accounts", "allow-ip", "p1", "2001:db8::/32")
    assert "not an IPv4/IPv6" in cli("accounts", "allow-ip", "p1", "300.1.1.1", ok=False)
    assert "192.0.2.7" not in cli("accounts", "deny-ip", "p1", "192.0.2.7/32")
    cli("accounts", "disable", "p1")
    assert "disabled" in cli("accounts", "show", "p1")
    cli("accounts", "enable", "p1")
    out = cli("accounts", "policy", "acme", "--min-length", "20", "--max-age-days", "30")
    assert "at least 20 characters" in out and "expire after 30 days" in out
    weak = cli("accounts", "set-password", "p1", "--stdin", input="Sixteen-Chars-0k\n", ok=False)
    assert "at least 20 characters" in weak


def test_hostkey_fingerprints_stay_the_same(cli) -> None:  # type: ignore[no-untyped-def]
    first = cli("gateway", "hostkey")
    assert "ssh-ed25519 SHA256:" in first and "ssh-rsa SHA256:" in first
    assert "ecdsa" not in first  # NIST-curve host keys are no longer offered
    assert cli("gateway", "hostkey") == first


def test_bans_and_sessions_commands_answer_on_an_empty_gateway(cli) -> None:  # type: ignore[no-untyped-def]
    assert "address" in cli("gateway", "bans")
    assert "not banned" in cli("gateway", "bans", "--lift", "192.0.2.1", ok=False)
    assert cli("gateway", "sessions", "--json").strip() == "[]"


async def test_passwords_near_expiry_raise_password_expiring(db: Database, tenant: Tenant) -> None:
    now = datetime.now(UTC)
    expiries = {"soon": now + timedelta(days=3), "later": now + timedelta(days=40), "never": None}
    for name in expiries:
        await admin.create_account(db, tenant, name, password="Corr3ct-Horse-Battery")
    async with db.transaction() as s:
        for name, expires in expiries.items():
            account = await admin.get_account(s, name)
            account.password_expires_at = expires
    [alert] = await raise_expiry_alerts(db)
    assert isinstance(alert, AlertRaised)
    assert (alert.kind, alert.tenant, alert.details["username"]) == (
        "password_expiring", "acme", "soon",
    )  # fmt: skip
    assert alert.details["days_left"] in (2, 3)
    assert [e.event_id for e in await _staged(db)] == [alert.event_id]


async def test_an_expiry_alert_survives_a_bus_outage_and_is_sent_once(
    db: Database, tenant: Tenant
) -> None:
    await admin.create_account(db, tenant, "soon", password="Corr3ct-Horse-Battery")
    async with db.transaction() as s:
        account = await admin.get_account(s, "soon")
        account.password_expires_at = datetime.now(UTC) + timedelta(days=3)
    [alert] = await raise_expiry_alerts(db)

    sent: list[Event] = []

    async def bus_down(event: Event) -> None:
        raise ConnectionError("nats: no servers available for connection")

    async def bus_up(event: Event) -> None:
        sent.append(event)

    assert await outbox.flush(db, bus_down) == 0
    assert await raise_expiry_alerts(db) == []  # reminded already: not staged again
    assert await outbox.flush(db, bus_up) == 1
    assert await raise_expiry_alerts(db) == []
    assert await outbox.flush(db, bus_up) == 0
    assert [e.event_id for e in sent] == [alert.event_id]

    # A new password brings a new expiry, and a reminder of its own.
    async with db.transaction() as s:
        account = await admin.get_account(s, "soon")
        account.password_expires_at = datetime.now(UTC) + timedelta(days=5)
    [renewed] = await raise_expiry_alerts(db)
    assert renewed.cause_key != alert.cause_key


async def test_an_account_another_replica_is_reminding_is_left_to_it(
    db: Database, tenant: Tenant, database_url: str
) -> None:
    if is_sqlite(database_url):
        pytest.skip("SQLite has one writer at a time (BEGIN IMMEDIATE): checks cannot overlap")
    await admin.create_account(db, tenant, "soon", password="Corr3ct-Horse-Battery")
    async with db.transaction() as s:
        account = await admin.get_account(s, "soon")
        account.password_expires_at = datetime.now(UTC) + timedelta(days=3)
    other = Database(database_url)
    try:
        async with other.transaction() as s:
            # Another replica's check holds the account, in the middle of its transaction.
            await s.execute(select(SftpAccount).with_for_update(of=SftpAccount))
            assert await raise_expiry_alerts(db) == []
    finally:
        await other.dispose()
    assert len(await raise_expiry_alerts(db)) == 1


async def _staged(db: Database) -> list[AlertRaised]:
    async with db.session() as s:
        rows = await s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return [AlertRaised.model_validate(row.payload) for row in rows]
