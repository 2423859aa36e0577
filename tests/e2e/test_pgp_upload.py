"""A partner whose policy requires OpenPGP: they encrypt and sign with their own `gpg`,
upload with OpenSSH, and find each file imported (a zip member by member) or refused
with the reason in their result file; support downloads the bytes they sent."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import LeaveBalance, Tenant
from courier.common.pgp import gpg_available
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv
from tests.support.imports import finished_imports
from tests.support.pgp import GpgHome, KeyPair
from tests.support.services import running
from tests.support.tenant_objects import ACCOUNT_PASSWORD, declare_feed

pytestmark = [
    pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass"),
    pytest.mark.skipif(not gpg_available(), reason="needs gpg (make test installs it)"),
]

PARTNER = "acme-payroll"


@pytest.fixture
async def partner(db: Database, tenant_with_keys: Tenant) -> str:
    """A partner whose leave feed takes signed OpenPGP files, plain or zipped."""
    await declare_feed(
        db, tenant_with_keys, "leave", "leave_{yyyyMMdd}.csv",
        decrypt="pgp", require_signature=True, unpack="auto",
    )  # fmt: skip
    await admin.create_account(
        db, tenant_with_keys, PARTNER, password=ACCOUNT_PASSWORD, auth_policy="password",
        allow=["127.0.0.1/32"],
    )  # fmt: skip
    return PARTNER


def seal(home: GpgHome, keys: KeyPair, path: Path) -> Path:
    """What the partner runs: `gpg --sign --encrypt -r <tenant key> FILE`."""
    return home.encrypt(path, keys.fingerprint, sign=True)


async def test_a_signed_encrypted_upload_is_imported_audited_and_downloadable_as_sent(
    pgp_settings: Settings,
    db: Database,
    partner: str,
    tenant_keys: KeyPair,
    partner_gpg: GpgHome,
    stranger_gpg: GpgHome,
    tmp_path: Path,
) -> None:
    first = leave_csv("E100,annual,80.00,2026-11-01", "E200,annual,40,2026-11-01")
    (tmp_path / "leave_20261101.csv").write_bytes(first)
    sent = seal(partner_gpg, tenant_keys, tmp_path / "leave_20261101.csv")
    # Two more days in one zip, encrypted as a whole.
    (tmp_path / "leave_20261103.csv").write_bytes(leave_csv("E100,annual,64,2026-11-03"))
    (tmp_path / "leave_20261102.csv").write_bytes(leave_csv("E100,annual,72,2026-11-02"))
    await asyncio.to_thread(
        subprocess.run,
        ["zip", "-q", "leave_20261103.zip", "leave_20261103.csv", "leave_20261102.csv"],
        cwd=tmp_path, check=True,
    )  # fmt: skip
    zipped = seal(partner_gpg, tenant_keys, tmp_path / "leave_20261103.zip")
    # Someone else's signature on the next day's file.
    (tmp_path / "leave_20261104.csv").write_bytes(leave_csv("E100,annual,0,2026-11-04"))
    forged = seal(stranger_gpg, tenant_keys, tmp_path / "leave_20261104.csv")
    got = tmp_path / "got"
    got.mkdir()

    async with (
        running("importer", pgp_settings),
        running("gateway", pgp_settings),
        running("console", pgp_settings),
    ):
        for path in (sent, zipped):
            done = await openssh_sftp(
                pgp_settings.gateway_port, partner, [f"put {path} /inbound/"],
                password=ACCOUNT_PASSWORD,
            )  # fmt: skip
            assert "Couldn't" not in done.stderr, done.stderr
            await finished_imports(db, 1 if path == sent else 4)
        await openssh_sftp(
            pgp_settings.gateway_port, partner, [f"put {forged} /inbound/"],
            password=ACCOUNT_PASSWORD,
        )  # fmt: skip
        imports = {i.file_name: i for i in await finished_imports(db, 5)}

        imp = imports["leave_20261101.csv.pgp"]
        assert (imp.status, imp.created) == ("completed", 2)
        assert imp.details["plaintext_sha256"] == hashlib.sha256(first).hexdigest()
        assert imp.details["signed_by"] == partner_gpg.fingerprint
        assert imports["leave_20261103.zip.pgp"].status == "unpacked"
        day2, day3 = imports["leave_20261102.csv"], imports["leave_20261103.csv"]
        assert (day2.status, day2.updated, day3.status, day3.updated) == (
            "completed", 1, "completed", 1,
        )  # fmt: skip
        assert day2.received_at < day3.received_at  # in name order
        refused = imports["leave_20261104.csv.pgp"]
        assert refused.status == "rejected"
        assert refused.error.startswith("the file is signed by a key this tenant does not know")
        async with db.session() as s:
            balances = {r.employee_id: Decimal(r.balance_hours)
                        for r in await s.scalars(select(LeaveBalance))}  # fmt: skip
        assert balances == {"E100": Decimal("64.00"), "E200": Decimal("40.00")}

        # The partner reads why in their result file.
        listing = await openssh_sftp(
            pgp_settings.gateway_port, partner,
            ["cd /outbound/results", "ls -1", f"lcd {got}", "get leave_20261104.csv.pgp.*"],
            password=ACCOUNT_PASSWORD,
        )  # fmt: skip
        names = [n for n in listing.stdout.splitlines() if n.endswith(".result.csv")]
        assert len([n for n in names if " " not in n]) == 5, listing.stdout
        [result] = got.iterdir()
        assert "the file is signed by a key this tenant does not know" in result.read_text()

        # Support downloads exactly what the partner sent: the encrypted bytes.
        base = f"http://127.0.0.1:{pgp_settings.console_port}"
        async with api_client(base, await make_token(db, "support")) as http:
            download = await http.get(f"/api/imports/{imp.id}/file")
            assert download.status_code == 200
            assert download.content == sent.read_bytes()
            detail = (await http.get(f"/api/imports/{imp.id}")).json()
            assert detail["details"]["plaintext_sha256"] == hashlib.sha256(first).hexdigest()
