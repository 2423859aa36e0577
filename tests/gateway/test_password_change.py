"""A partner whose password has expired changes it in their own SSH client."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta

import asyncssh
import pexpect
import pytest
from sqlalchemy import update

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.settings import Settings
from courier.gateway import admin
from courier.gateway.server import CHANGE_PROMPT
from tests.gateway.conftest import Partner, audit_lines, audit_soon
from tests.support.clients import openssh_available

NEW_PASSWORD = "Fresh-Staple-Battery-42"

needs_openssh = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH")


class Changer(asyncssh.SSHClient):
    """A client whose user answers each change request with the next of `choices`."""

    def __init__(self, old: str, choices: list[str]) -> None:
        self.old = old
        self.choices = iter(choices)
        self.prompts: list[str] = []
        self.changed = False

    def password_change_requested(self, prompt: str, lang: str) -> tuple[str, str]:
        self.prompts.append(prompt)
        return self.old, next(self.choices)

    def password_changed(self) -> None:
        self.changed = True


async def _expire(db: Database, clock: ManualClock) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(SftpAccount).values(password_expires_at=clock.now() - timedelta(hours=1))
        )


async def _account(db: Database, username: str = "acme-payroll") -> SftpAccount:
    async with db.session() as s:
        return await admin.get_account(s, username)


async def _change(partner: Partner, choices: list[str], **options: object) -> Changer:
    client = Changer(partner.password, choices)
    conn = await partner.connect(client_factory=lambda: client, **options)
    async with conn, conn.start_sftp_client() as sftp:
        assert "results" in await sftp.listdir("/outbound")
    return client


async def test_expired_password_is_changed_in_the_client_and_the_new_one_logs_in(
    partner: Partner, clocked_gateway: Settings, gateway_clock: ManualClock, db: Database
) -> None:
    await _expire(db, gateway_clock)
    client = await _change(partner, [NEW_PASSWORD])
    assert client.prompts == [CHANGE_PROMPT] and client.changed

    account = await _account(db)
    assert account.password_expires_at == gateway_clock.now() + timedelta(days=90)
    assert len(await audit_soon(db, "login_succeeded")) == 1
    [changed] = await audit_soon(db, "password_changed")
    assert (changed.username, changed.tenant) == ("acme-payroll", "acme")

    async with await partner.connect(password=NEW_PASSWORD):
        pass
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect()  # the old password is gone


async def test_weak_and_reused_new_passwords_are_refused_with_the_reason(
    partner: Partner, clocked_gateway: Settings, gateway_clock: ManualClock, db: Database
) -> None:
    await _expire(db, gateway_clock)
    client = await _change(partner, ["short", partner.password, NEW_PASSWORD])
    assert client.prompts[0] == CHANGE_PROMPT
    assert "password too weak: needs at least 14 characters" in client.prompts[1]
    assert "password was used before" in client.prompts[2]
    refused = await audit_soon(db, "password_change_refused", 2)
    assert [r.reason for r in refused] == [
        "password too weak: needs at least 14 characters and at least 3 of: "
        "lower case, upper case, digits, symbols",
        "password was used before (last 5 are refused)",
    ]
    assert len(await audit_soon(db, "password_changed")) == 1
    # Nothing of a password reaches the audit.
    reasons = " ".join(str(line.reason) for line in await audit_lines(db))
    assert NEW_PASSWORD not in reasons and partner.password not in reasons


async def test_password_and_key_account_shows_its_key_before_changing_its_password(
    partner: Partner, clocked_gateway: Settings, gateway_clock: ManualClock, db: Database
) -> None:
    await _expire(db, gateway_clock)
    client = Changer(partner.password, [NEW_PASSWORD])
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect(client_keys=None, client_factory=lambda: client)
    assert client.prompts == []  # never asked: the old password alone changes nothing
    before = await _account(db)
    assert before.password_expires_at is not None
    assert before.password_expires_at < gateway_clock.now()
    assert [line.reason for line in await audit_soon(db, "login_failed")] == ["password_expired"]

    # With the key the same partner is asked, and gets in.
    assert (await _change(partner, [NEW_PASSWORD])).changed


async def test_expired_password_without_a_change_does_not_log_in(
    partner: Partner, clocked_gateway: Settings, gateway_clock: ManualClock, db: Database
) -> None:
    await _expire(db, gateway_clock)
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect()  # asyncssh's default client declines to change it
    assert [line.reason for line in await audit_soon(db, "login_failed")] == ["password_expired"]


@needs_openssh
async def test_openssh_asks_for_the_new_password_twice_and_logs_in(
    partner: Partner, clocked_gateway: Settings, gateway_clock: ManualClock, db: Database
) -> None:
    await _expire(db, gateway_clock)
    transcript = await asyncio.to_thread(_openssh_change, partner, ["weak", NEW_PASSWORD])
    assert CHANGE_PROMPT in transcript
    assert "password too weak" in transcript
    assert "results" in transcript and "test" in transcript
    async with await partner.connect(password=NEW_PASSWORD):
        pass
    assert len(await audit_soon(db, "password_changed")) == 1


def _openssh_change(partner: Partner, choices: list[str]) -> str:
    """OpenSSH's sftp on a terminal, as a person types: key, password, then the old
    password and each new one twice, until the server takes one. Returns what the
    terminal showed."""
    shown = io.StringIO()
    child = pexpect.spawn(
        "sftp",
        [
            "-P", str(partner.port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-i", str(partner.key_path), "-o", "IdentitiesOnly=yes",
            f"{partner.username}@127.0.0.1",
        ],
        encoding="utf-8",
        timeout=30,
    )  # fmt: skip
    child.logfile_read = shown
    try:
        child.expect(re.escape(f"{partner.username}@127.0.0.1's password:"))
        child.sendline(partner.password)
        for choice in choices:
            # OpenSSH asks for the old password again at each request.
            child.expect("old password:")
            child.sendline(partner.password)
            child.expect("Enter .*new password:")
            child.sendline(choice)
            child.expect("Retype .*new password:")
            child.sendline(choice)
        child.expect("sftp>")
        child.sendline("ls /outbound")
        child.expect("sftp>")
        child.sendline("bye")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return shown.getvalue()
