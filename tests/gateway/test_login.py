"""Who gets in: password and key together, and every refusal a partner can run into."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest
from sqlalchemy import update

from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.settings import Settings
from courier.gateway import bans
from tests.gateway.conftest import Partner, audit_lines, audit_soon
from tests.support.clients import asyncssh_connect, openssh_available
from tests.support.services import eventually

needs_openssh = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH and sshpass")


async def _failures(db: Database) -> list[str | None]:
    return [e.reason for e in await audit_lines(db, "login_failed")]


async def _reasons(db: Database, n: int) -> list[str | None]:
    async def probe() -> list[str | None] | None:
        found = await _failures(db)
        return found if len(found) >= n else None

    return await eventually(probe)


@needs_openssh
async def test_openssh_with_key_then_password_logs_in(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    result = await partner.openssh(["ls /"])
    assert "inbound" in result.stdout and "outbound" in result.stdout, result.stderr
    [line] = await audit_soon(db, "login_succeeded")
    assert (line.username, line.tenant, line.reason) == (
        "acme-payroll",
        "acme",
        "password+publickey",
    )


async def test_asyncssh_with_key_and_password_logs_in(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        assert sorted(await sftp.listdir("/")) == [".", "..", "inbound", "outbound"]
    [line] = await audit_soon(db, "login_succeeded")
    assert line.reason == "password+publickey"


@needs_openssh
async def test_key_alone_is_not_enough_for_a_password_and_key_account(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    result = await partner.openssh(["ls /"], password=False)
    assert "Permission denied" in result.stderr and "inbound" not in result.stdout
    assert await _reasons(db, 1) == ["password_missing"]


@needs_openssh
async def test_password_alone_is_not_enough_for_a_password_and_key_account(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    result = await partner.openssh(["ls /"], key=False)
    assert "Permission denied" in result.stderr and "inbound" not in result.stdout
    assert await _reasons(db, 1) == ["key_missing"]
    # The server told the client after the password that only the key could follow.
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect(client_keys=None)


@needs_openssh
async def test_wrong_password_is_refused(partner: Partner, gateway: Settings, db: Database) -> None:
    result = await partner.openssh(["ls /"], password="Wrong-Password-123")
    # sshpass gives up (exit 5) when asked for the password a second time.
    assert result.returncode != 0 and "inbound" not in result.stdout
    assert (await _reasons(db, 1))[0] == "password"


async def test_someone_elses_key_is_refused(
    partner: Partner, make_partner, gateway: Settings, db: Database
) -> None:  # type: ignore[no-untyped-def]
    other = await make_partner("acme-hr")
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect(client_keys=[str(other.key_path)])
    assert await _reasons(db, 1) == ["key_missing"]


@needs_openssh
async def test_disabled_account_is_refused(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    async with db.transaction() as s:
        await s.execute(update(SftpAccount).values(enabled=False))
    result = await partner.openssh(["ls /"])
    assert "inbound" not in result.stdout
    assert "account disabled" in result.stderr
    assert await _reasons(db, 1) == ["disabled"]


@needs_openssh
async def test_address_outside_every_allowlist_is_dropped_before_ssh(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    result = await partner.openssh(["ls /"], bind_address="127.0.0.2")
    assert "inbound" not in result.stdout
    # No key exchange happened: OpenSSH never saw a server banner.
    assert "Permission denied" not in result.stderr
    with pytest.raises((ConnectionError, asyncssh.Error, OSError)):
        await partner.connect(local_addr=("127.0.0.2", 0))
    # Nothing more: no login attempt, no audit line.
    assert await audit_lines(db) == []


async def test_address_allowed_for_another_account_only_is_refused_at_login(
    partner: Partner, make_partner, gateway: Settings, db: Database
) -> None:  # type: ignore[no-untyped-def]
    other = await make_partner("acme-hr", allow=["127.0.0.2/32"])
    async with await other.connect(local_addr=("127.0.0.2", 0)) as conn:
        assert conn.get_extra_info("username") == "acme-hr"
    with pytest.raises(asyncssh.PermissionDenied):
        await partner.connect(local_addr=("127.0.0.2", 0))
    assert await _reasons(db, 1) == ["address_not_allowed"]


async def test_address_is_banned_after_repeated_failures_and_can_be_lifted(
    partner: Partner, gateway: Settings, db: Database
) -> None:
    for _ in range(gateway.gateway_ban_after_failures):
        with pytest.raises(asyncssh.PermissionDenied):
            await partner.connect(password="Wrong-Password-123")
    # Even the right credentials do not help now.
    with pytest.raises((ConnectionError, asyncssh.Error, OSError)):
        await partner.connect()
    [ban] = await bans.list_bans(db)
    assert ban.address == "127.0.0.1" and ban.failures == gateway.gateway_ban_after_failures

    assert await bans.lift(db, "127.0.0.1")

    async def logged_in() -> bool:
        try:
            async with await partner.connect():
                return True
        except (ConnectionError, asyncssh.Error, OSError):
            return False

    assert await eventually(logged_in)


async def test_key_only_account_logs_in_with_its_key(
    make_partner, gateway: Settings, db: Database
) -> None:  # type: ignore[no-untyped-def]
    robot = await make_partner("acme-robot", auth_policy="key", password=None)
    async with await robot.connect(password=None) as conn:
        assert conn.get_extra_info("username") == "acme-robot"


async def test_password_only_account_logs_in_with_its_password(
    make_partner, gateway: Settings
) -> None:  # type: ignore[no-untyped-def]
    legacy = await make_partner("acme-legacy", auth_policy="password")
    async with await legacy.connect(client_keys=None) as conn:
        assert conn.get_extra_info("username") == "acme-legacy"


@pytest.mark.parametrize(
    "weak",
    [
        {"encryption_algs": ["aes128-cbc", "aes256-cbc"]},
        {"kex_algs": ["diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"]},
        {"mac_algs": ["hmac-sha1"]},
        {"server_host_key_algs": ["ssh-rsa"]},
    ],
    ids=["cbc", "sha1-kex", "sha1-mac", "sha1-hostkey"],
)
async def test_client_offering_only_outdated_algorithms_cannot_connect(
    partner: Partner, gateway: Settings, weak: dict[str, list[str]]
) -> None:
    with pytest.raises(asyncssh.Error):
        await asyncssh_connect(gateway.gateway_port, partner.username, partner.password, **weak)


@needs_openssh
async def test_server_offers_no_sha1_no_cbc_no_weak_groups(
    partner: Partner, gateway: Settings
) -> None:
    """What OpenSSH sees in the server's KEXINIT proposal."""
    proc = await asyncio.create_subprocess_exec(
        "ssh", "-vv", "-p", str(gateway.gateway_port),
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
        f"{partner.username}@127.0.0.1", "true",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode()
    server_part = text[text.index("peer server KEXINIT proposal") :]
    offered = {}
    for line in server_part.splitlines()[1:9]:
        name, _, algs = line.removeprefix("debug2: ").partition(": ")
        offered[name] = algs.split(",")
    everything = [a for algs in offered.values() for a in algs]
    assert offered["KEX algorithms"] and offered["ciphers ctos"], text
    assert not [a for a in everything if "cbc" in a]
    assert not [a for a in everything if a in ("ssh-rsa", "ssh-dss", "hmac-sha1", "hmac-sha1-96")]
    assert not [a for a in offered["KEX algorithms"] if a.endswith("-sha1")]
    assert not [a for a in offered["MACs ctos"] if "sha1" in a]
