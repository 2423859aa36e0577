"""SFTP statuses as OpenSSH's internal-sftp gives them, side by side with a real sshd.

The sshd peer runs as the test's user (root here), so it can show what succeeds and
what is missing, not what a partner's rights refuse: those cases are checked against
the gateway alone, with the code internal-sftp gives for EPERM (PERMISSION_DENIED).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime

import asyncssh
from asyncssh import (
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    SFTPAttrs,
)

from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.gateway.conftest import Partner
from tests.support.clients import asyncssh_connect
from tests.support.sshd import Sshd

OK = 0
BODY = b"employee_id,leave_type,balance_hours,as_of\n"
WHEN = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())


async def status(call: Awaitable[object]) -> int:
    """The SFTP status a request got: OK, or the error's code."""
    try:
        await call
    except asyncssh.SFTPError as exc:
        return exc.code
    return OK


@contextlib.asynccontextmanager
async def peer_sftp(sshd: Sshd) -> AsyncIterator[asyncssh.SFTPClient]:
    """OpenSSH's internal-sftp with an `inbound` folder holding `leave.csv`, as a partner
    with an upload would see it (paths relative to the start folder)."""
    async with (
        await asyncssh_connect(sshd.port, sshd.user, client_keys=[sshd.client_key()]) as conn,
        conn.start_sftp_client() as sftp,
    ):
        await sftp.mkdir("inbound")
        async with sftp.open("inbound/leave.csv", "wb") as f:
            await f.write(BODY)
        yield sftp


@contextlib.asynccontextmanager
async def gateway_sftp(partner: Partner) -> AsyncIterator[asyncssh.SFTPClient]:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        await sftp.chdir("/")
        async with sftp.open("inbound/leave.csv", "wb") as f:
            await f.write(BODY)
        yield sftp


SIDE_BY_SIDE = {
    "utime of own file": lambda s: s.utime("inbound/leave.csv", (WHEN, WHEN)),
    "utime of a missing file": lambda s: s.utime("inbound/missing.csv", (WHEN, WHEN)),
    "chmod of a missing file": lambda s: s.chmod("inbound/missing.csv", 0o600),
    "stat of a missing file": lambda s: s.stat("inbound/missing.csv"),
    "read of a missing file": lambda s: s.open("inbound/missing.csv", "rb"),
    "remove of a missing file": lambda s: s.remove("inbound/missing.csv"),
    "rename of a missing file": lambda s: s.rename("inbound/missing.csv", "inbound/x.csv"),
    "list of a missing folder": lambda s: s.listdir("inbound/missing"),
    "stat of a missing top folder": lambda s: s.stat("nowhere/leave.csv"),
    "upload into a missing folder": lambda s: s.open("inbound/missing/leave.csv", "wb"),
}


async def test_statuses_match_internal_sftp(
    sshd: Sshd, partner: Partner, gateway: Settings
) -> None:
    peer: dict[str, int] = {}
    ours: dict[str, int] = {}
    async with peer_sftp(sshd) as sftp:
        for name, call in SIDE_BY_SIDE.items():
            peer[name] = await status(call(sftp))
    async with gateway_sftp(partner) as sftp:
        for name, call in SIDE_BY_SIDE.items():
            ours[name] = await status(call(sftp))
    assert ours == peer
    assert peer["utime of own file"] == OK
    assert set(peer.values()) - {OK} == {FX_NO_SUCH_FILE}


async def test_a_time_set_on_an_own_upload_is_kept_as_internal_sftp_keeps_it(
    sshd: Sshd, partner: Partner, gateway: Settings
) -> None:
    async with peer_sftp(sshd) as sftp:
        await sftp.utime("inbound/leave.csv", (WHEN, WHEN))
        assert (await sftp.stat("inbound/leave.csv")).mtime == WHEN
    async with gateway_sftp(partner) as sftp:
        await sftp.utime("inbound/leave.csv", (WHEN, WHEN))
        assert (await sftp.stat("inbound/leave.csv")).mtime == WHEN
        # As `put -p` does: the time set on the open file, before it is closed.
        async with sftp.open("inbound/other.csv", "wb") as f:
            await f.write(BODY)
            await f.setstat(SFTPAttrs(atime=WHEN, mtime=WHEN))
        assert (await sftp.stat("inbound/other.csv")).mtime == WHEN


async def test_what_the_partner_does_not_own_cannot_be_changed(
    partner: Partner, gateway: Settings, storage: Storage
) -> None:
    await storage.put("tenants/acme/outbound/timesheets.csv", BODY)
    await storage.put("tenants/acme/outbound/results/leave.csv.result.csv", BODY)
    async with gateway_sftp(partner) as sftp:
        for path in ("/", "/inbound", "/inbound/test", "/outbound", "/outbound/results"):
            assert await status(sftp.chmod(path, 0o777)) == FX_PERMISSION_DENIED, path
            assert await status(sftp.utime(path, (WHEN, WHEN))) == FX_PERMISSION_DENIED, path
        for path in ("/outbound/timesheets.csv", "/outbound/results/leave.csv.result.csv"):
            assert await status(sftp.utime(path, (WHEN, WHEN))) == FX_PERMISSION_DENIED, path
            async with sftp.open(path, "rb") as f:
                assert await status(f.setstat(SFTPAttrs(mtime=WHEN))) == FX_PERMISSION_DENIED
        assert (await sftp.stat("/outbound/timesheets.csv")).mtime != WHEN


async def test_a_change_storage_cannot_keep_is_refused_not_pretended(
    partner: Partner, gateway: Settings
) -> None:
    """internal-sftp would change the mode; storage keeps none, so the client is told."""
    async with gateway_sftp(partner) as sftp:
        before = await sftp.stat("inbound/leave.csv")
        assert await status(sftp.chmod("inbound/leave.csv", 0o600)) == FX_OP_UNSUPPORTED
        assert await status(sftp.truncate("inbound/leave.csv", 1)) == FX_OP_UNSUPPORTED
        after = await sftp.stat("inbound/leave.csv")
        assert (after.permissions, after.size) == (before.permissions, before.size)
        # Setting what is already there changes nothing and is no error.
        assert await status(sftp.chmod("inbound/leave.csv", before.permissions or 0)) == OK


async def test_a_read_only_account_changes_nothing_in_inbound(
    make_partner,  # type: ignore[no-untyped-def]
    gateway: Settings,
    storage: Storage,
) -> None:
    reader = await make_partner("acme-reader", can_upload=False)
    await storage.put("tenants/acme/inbound/leave.csv", BODY)
    async with await reader.connect() as conn, conn.start_sftp_client() as sftp:
        changed = await status(sftp.utime("/inbound/leave.csv", (WHEN, WHEN)))
    assert changed == FX_PERMISSION_DENIED
