"""What the gateway offers in a key exchange, as `ssh-audit` (a scanner nobody here
wrote) and real clients see it, and legacy algorithms turned on for one account."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.settings import Settings
from courier.gateway.algorithms import modern, post_quantum_kex
from tests.gateway.conftest import Partner
from tests.support.cli import cli_env, courier
from tests.support.clients import asyncssh_connect
from tests.support.services import eventually

SSH_AUDIT = Path(sys.executable).with_name("ssh-audit")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
# What a client from before ETM MACs and curve25519 proposes (older Java and .NET libraries).
OLD_CLIENT = {
    "kex_algs": ["ecdh-sha2-nistp256", "diffie-hellman-group14-sha256"],
    "encryption_algs": ["aes128-ctr"],
    "mac_algs": ["hmac-sha2-256"],
}


async def ssh_audit(port: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        str(SSH_AUDIT), "-j", "-p", str(port), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out, err.decode()
    return json.loads(out)


def notes(report: dict[str, Any], level: str) -> dict[str, list[str]]:
    """Algorithm -> the notes of `level` ("fail", "warn") ssh-audit gave it."""
    found: dict[str, list[str]] = {}
    for section in ("kex", "key", "enc", "mac"):
        for entry in report[section]:
            if entry.get("notes", {}).get(level):
                found[entry["algorithm"]] = entry["notes"][level]
    return found


def docs_section(title: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"### {title}")
    end = text.find("\n## ", start)
    return text[start : end if end > 0 else None]


async def test_ssh_audit_finds_no_failure_and_every_warning_is_explained_in_the_docs(
    partner: Partner, gateway: Settings
) -> None:
    report = await ssh_audit(gateway.gateway_port)

    assert notes(report, "fail") == {}
    assert report["cves"] == []
    assert report["compression"] == ["none"]
    assert report["banner"]["raw"] == "SSH-2.0-Courier"
    kex = [e["algorithm"] for e in report["kex"]]
    assert kex[: len(post_quantum_kex())] == list(post_quantum_kex())
    assert "mlkem768x25519-sha256" in kex, "asyncssh offers ML-KEM: the gateway should too"
    assert {"curve25519-sha256", "curve25519-sha256@libssh.org"} <= set(kex)
    host_keys = {e["algorithm"]: e.get("keysize") for e in report["key"]}
    assert host_keys == {"ssh-ed25519": None, "rsa-sha2-512": 3072, "rsa-sha2-256": 3072}
    enc = [e["algorithm"] for e in report["enc"]]
    assert enc[:3] == [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
    ]
    assert all(e["algorithm"].endswith("-etm@openssh.com") for e in report["mac"])
    # ssh-audit's connection rate test found the connections throttled (no DHEat warning).
    assert not [n for ns in notes(report, "warn").values() for n in ns if "DHEat" in n]

    explained = docs_section("Algorithms")
    for algorithm, warnings in notes(report, "warn").items():
        assert f"`{algorithm}`" in explained, (algorithm, warnings)


async def test_clients_negotiate_the_post_quantum_exchange_or_curve25519_and_aead(
    partner: Partner, gateway: Settings
) -> None:
    async with await partner.connect(kex_algs=["mlkem768x25519-sha256"]) as conn:
        assert conn.get_extra_info("username") == partner.username
    proc = await asyncio.create_subprocess_exec(
        "ssh", "-v", "-p", str(gateway.gateway_port), "-i", str(partner.key_path),
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
        f"{partner.username}@127.0.0.1", "true",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode()
    # OpenSSH before 9.9 has no ML-KEM: it settles on curve25519, an AEAD cipher, ed25519.
    assert re.search(r"kex: algorithm: (mlkem768x25519-sha256|curve25519-sha256)", text), text
    assert "cipher: chacha20-poly1305@openssh.com MAC: <implicit>" in text
    assert "kex: host key algorithm: ssh-ed25519" in text
    assert "compression: none" in text


def test_compression_is_offered_only_when_configured_and_only_after_login() -> None:
    assert modern().compression == ("none",)
    assert modern(compression=True).compression == ("zlib@openssh.com", "none")


async def test_a_client_with_only_legacy_algorithms_is_refused_by_default(
    partner: Partner, gateway: Settings
) -> None:
    with pytest.raises(asyncssh.Error):
        await asyncssh_connect(
            gateway.gateway_port, partner.username, partner.password, **OLD_CLIENT
        )


async def test_legacy_algorithms_reach_only_the_addresses_of_the_account_that_has_them(
    make_partner, gateway: Settings, db: Database
) -> None:  # type: ignore[no-untyped-def]
    modern = await make_partner("acme-payroll", allow=["127.0.0.1/32"])
    old = await make_partner("acme-mainframe", allow=["127.0.0.2/32"])
    env = cli_env(gateway)

    code, out = await courier(env, "accounts", "legacy-algorithms", "acme-mainframe", "on")
    assert code == 0, out
    assert "legacy algorithms on for acme-mainframe" in out
    assert "offered to: 127.0.0.2/32" in out

    async def old_client_logs_in() -> bool:
        try:
            async with await old.connect(local_addr=("127.0.0.2", 0), **OLD_CLIENT) as conn:
                return conn.get_extra_info("username") == "acme-mainframe"
        except (asyncssh.Error, OSError):
            return False

    assert await eventually(old_client_logs_in)
    # Another account's address, even with that account's own credentials: modern only.
    with pytest.raises(asyncssh.Error):
        await modern.connect(**OLD_CLIENT)

    async with db.session() as s:
        [entry] = await s.scalars(
            select(ConsoleAuditEntry).where(
                ConsoleAuditEntry.action == "sftp_account.legacy_algorithms"
            )
        )
    assert entry.actor.startswith("cli:") and entry.details["legacy_algorithms"] is True
    assert entry.details["offered_to"] == ["127.0.0.2/32"]
    code, out = await courier(env, "accounts", "show", "acme-mainframe")
    assert "legacy algorithms: on" in out

    code, out = await courier(env, "accounts", "legacy-algorithms", "acme-mainframe", "off")
    assert code == 0 and "legacy algorithms off for acme-mainframe" in out

    async def old_client_refused() -> bool:
        return not await old_client_logs_in()

    assert await eventually(old_client_refused)


async def test_a_range_too_wide_to_be_a_partner_never_gets_legacy_algorithms(
    make_partner, gateway: Settings
) -> None:  # type: ignore[no-untyped-def]
    everywhere = await make_partner("acme-anywhere", allow=["0.0.0.0/0", "127.0.0.2/32"])
    code, out = await courier(
        cli_env(gateway), "accounts", "legacy-algorithms", "acme-anywhere", "on"
    )
    assert code == 0, out
    assert "offered to: 127.0.0.2/32" in out
    assert "not offered to 0.0.0.0/0: too wide a range" in out
    await asyncio.sleep(gateway.gateway_state_refresh_seconds * 3)
    with pytest.raises(asyncssh.Error):
        await everywhere.connect(**OLD_CLIENT)
    async with await everywhere.connect(local_addr=("127.0.0.2", 0), **OLD_CLIENT) as conn:
        assert conn.get_extra_info("username") == "acme-anywhere"
