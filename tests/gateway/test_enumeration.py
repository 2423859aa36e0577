"""No enumeration: whoever is not let in is told the same thing, after the same work.

An unknown user, a wrong password, a wrong key and a known account tried from an
address outside its allowlist get one and the same refusal, from OpenSSH's `sftp` as
from asyncssh, and each costs one argon2id verification before the answer. Only the
session audit tells support which it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from prometheus_client import REGISTRY

from courier.common.db.engine import Database
from courier.common.settings import Settings
from tests.gateway.conftest import PASSWORD, Partner, audit_lines, new_key
from tests.support.clients import asyncssh_connect, openssh_available, openssh_sftp
from tests.support.services import eventually

needs_openssh = pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH and sshpass")
WRONG_PASSWORD = "Wr0ng-Horse-Battery"
OUTSIDE = "127.0.0.2"


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    # Every case fails on purpose, many times over: no ban may end the comparison early.
    return settings.model_copy(
        update={"gateway_ban_after_failures": 1000, "gateway_state_refresh_seconds": 0.2}
    )


@dataclass
class Attempt:
    """One refused login: who, with which key and password, from where."""

    username: str
    key_path: Path
    password: str
    bind: str | None = None


@dataclass
class Cases:
    attempts: dict[str, Attempt]
    # The reason the session audit records for each case.
    reasons: dict[str, str]


@pytest.fixture
async def cases(make_partner, tmp_path: Path) -> Cases:  # type: ignore[no-untyped-def]
    partner: Partner = await make_partner("acme-payroll")
    # Someone allowed from OUTSIDE, so that address gets past the pre-login check.
    await make_partner("acme-hr", allow=[f"{OUTSIDE}/32"])
    await make_partner("acme-legacy", auth_policy="password")
    await make_partner("acme-robot", auth_policy="key", password=None)
    stranger = tmp_path / "stranger_ed25519"
    new_key(stranger)
    return Cases(
        attempts={
            "unknown user": Attempt("acme-nobody", stranger, PASSWORD),
            "wrong password": Attempt(partner.username, stranger, WRONG_PASSWORD),
            "wrong key": Attempt(partner.username, stranger, PASSWORD),
            "outside allowlist": Attempt(partner.username, partner.key_path, PASSWORD, OUTSIDE),
            "password account, wrong password": Attempt("acme-legacy", stranger, WRONG_PASSWORD),
            "key account, wrong key": Attempt("acme-robot", stranger, PASSWORD),
        },
        reasons={
            "unknown user": "unknown_user",
            "wrong password": "password",
            "wrong key": "key_missing",
            "outside allowlist": "address_not_allowed",
            "password account, wrong password": "password",
            "key account, wrong key": "key_missing",
        },
    )


def _verifications() -> float:
    return REGISTRY.get_sample_value("courier_sftp_password_verifications_total") or 0.0


async def _failures_for(db: Database, username: str, n: int) -> list[str | None]:
    async def probe() -> list[str | None] | None:
        lines = [e for e in await audit_lines(db, "login_failed") if e.username == username]
        return [e.reason for e in lines] if len(lines) >= n else None

    return await eventually(probe)


async def _asyncssh_refusal(port: int, attempt: Attempt) -> tuple[int, str]:
    options: dict[str, object] = {"client_keys": [str(attempt.key_path)]}
    if attempt.bind:
        options["local_addr"] = (attempt.bind, 0)
    with pytest.raises(asyncssh.PermissionDenied) as refused:
        await asyncssh_connect(port, attempt.username, attempt.password, **options)
    # asyncssh names the user it tried: the rest of what it reports must not differ.
    return refused.value.code, refused.value.reason.replace(attempt.username, "USER")


async def _openssh_refusal(port: int, attempt: Attempt) -> tuple[int, str]:
    result = await openssh_sftp(
        port,
        attempt.username,
        ["ls /"],
        password=attempt.password,
        identity=attempt.key_path,
        bind_address=attempt.bind,
    )
    assert "inbound" not in result.stdout
    # What the partner is told: OpenSSH's refusal line, with the user it tried taken
    # out. (Lines about the closed connection come in either order, with port numbers.)
    told = [
        line.strip().replace(attempt.username, "USER")
        for line in result.stderr.splitlines()
        if "denied" in line or "refused" in line or "not allowed" in line
    ]
    return result.returncode, "\n".join(told)


async def _compare(
    cases: Cases, db: Database, refuse: Callable[[Attempt], Awaitable[object]]
) -> dict[str, object]:
    """Each case's refusal, checking that each cost one argon2id verification and was
    audited with its real reason."""
    seen: dict[str, object] = {}
    for name, attempt in cases.attempts.items():
        before = len(
            [e for e in await audit_lines(db, "login_failed") if e.username == attempt.username]
        )
        verified = _verifications()
        seen[name] = await refuse(attempt)
        assert _verifications() - verified == 1, name
        reasons = await _failures_for(db, attempt.username, before + 1)
        assert reasons[-1] == cases.reasons[name], name
    return seen


async def test_asyncssh_sees_the_same_refusal_in_every_case(
    cases: Cases, gateway: Settings, db: Database
) -> None:
    seen = await _compare(cases, db, lambda a: _asyncssh_refusal(gateway.gateway_port, a))
    assert len(set(seen.values())) == 1, seen


@needs_openssh
async def test_openssh_sees_the_same_refusal_in_every_case(
    cases: Cases, gateway: Settings, db: Database
) -> None:
    seen = await _compare(cases, db, lambda a: _openssh_refusal(gateway.gateway_port, a))
    assert len(set(seen.values())) == 1, seen
    [(code, stderr)] = set(seen.values())  # type: ignore[misc]
    assert code != 0 and "Permission denied (publickey,password)" in stderr
    assert "address" not in stderr and "allowed" not in stderr


@needs_openssh
async def test_the_methods_offered_name_no_accounts_policy(cases: Cases, gateway: Settings) -> None:
    """A key-only, a password-only, a password+key account and no account at all are
    offered the same methods before a first factor."""
    offered = {
        username: await _methods(gateway.gateway_port, username)
        for username in ("acme-nobody", "acme-payroll", "acme-legacy", "acme-robot")
    }
    assert set(offered.values()) == {("password", "publickey")}, offered


async def _methods(port: int, username: str) -> tuple[str, ...]:
    """The methods the server lists after a `none` request (what `ssh -v` prints as
    "Authentications that can continue")."""
    proc_args = [
        "ssh", "-v", "-p", str(port), "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "PubkeyAuthentication=no", "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no", f"{username}@127.0.0.1", "true",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *proc_args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    for line in err.decode(errors="replace").splitlines():
        if "Authentications that can continue:" in line:
            return tuple(sorted(line.rsplit(":", 1)[1].strip().split(",")))
    raise AssertionError(err.decode(errors="replace"))


async def test_the_audit_keeps_the_real_reason_for_a_known_account_outside_its_allowlist(
    cases: Cases, gateway: Settings, db: Database
) -> None:
    attempt = cases.attempts["outside allowlist"]
    _, reason = await _asyncssh_refusal(gateway.gateway_port, attempt)
    assert "address" not in reason
    [line] = [e for e in await audit_lines(db, "login_failed") if e.peer == OUTSIDE]
    assert (line.username, line.reason) == ("acme-payroll", "address_not_allowed")
