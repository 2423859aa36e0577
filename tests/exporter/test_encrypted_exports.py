"""Encrypted exports: what the partner collects is OpenPGP to their key, and their own
`gpg` turns it back into exactly the file a plain export of the same spec would be."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from courier.cli import provision
from courier.common import pgp_keys
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Timesheet
from courier.common.events import ExportRun
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.exporter import commands
from courier.exporter.worker import Exporter
from tests.exporter.conftest import DAY, make_spec, run_export, spec_model
from tests.support.cli import cli_env, courier
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.pgp import PASSPHRASE, GpgHome, KeyPair, gpg_decrypt
from tests.support.pgp_fixtures import needs_gpg
from tests.support.services import running
from tests.support.sshd import Sshd
from tests.support.staged import staged

pytestmark = needs_gpg

PLAIN = "timesheets_20261102.csv"
SECRET = SecretStr(PASSPHRASE)
PASSWORD = "Corr3ct-Horse-Battery"


async def import_partner_key(db: Database, home: GpgHome, **scope: str) -> None:
    """The partner's public key, as support imports it with `courier keys import`."""
    await pgp_keys.import_key(db, "acme", home.export(), actor="support", **scope)


def vendor_sftp(sshd: Sshd) -> dict[str, Any]:
    return {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "private_key": f"file:{sshd.client_key_path}",
        "host_key_sha256": sshd.host_fingerprint(),
    }


async def collected(folder: Path, storage: Storage, name: str) -> Path:
    """The partner's copy of `/outbound/<name>`, downloaded into `folder`."""
    path = folder / name.rsplit("/", 1)[-1]
    path.write_bytes(await storage.read(f"tenants/acme/outbound/{name}"))
    return path


async def test_encrypted_export_decrypts_with_gpg_to_the_plain_build_and_is_pushed_as_pgp(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    partner_gpg: GpgHome,
    tmp_path: Path,
    sshd: Sshd,
) -> None:
    await import_partner_key(db, partner_gpg)
    exporter = Exporter(db, storage)
    plain = await run_export(db, exporter, tenant)
    export = await run_export(
        db,
        exporter,
        tenant,
        name="payroll-pgp",
        encrypt="pgp",
        destinations=[{"type": "pickup"}, vendor_sftp(sshd)],
    )
    assert (plain.status, export.status) == ("delivered", "delivered"), export.error
    assert export.file_name == f"{PLAIN}.pgp"

    picked_up = await collected(tmp_path, storage, f"{PLAIN}.pgp")
    sealed = picked_up.read_bytes()
    plain_bytes = await storage.read(f"tenants/acme/outbound/{PLAIN}")
    # The vendor's own gpg gets back exactly the plain build of the same spec and period.
    opened, status = gpg_decrypt(picked_up, partner_gpg)
    assert opened == plain_bytes and opened.startswith(b"Employee,Name,Date")
    assert "DECRYPTION_OKAY" in status and "GOODSIG" not in status
    assert plain_bytes not in sealed
    # Pushed to the vendor's server under the same name, the same bytes.
    assert [p.name for p in sshd.home.iterdir()] == [f"{PLAIN}.pgp"]
    assert (sshd.home / f"{PLAIN}.pgp").read_bytes() == sealed
    # The row describes what was delivered, not the plaintext.
    assert export.rows == plain.rows == 3
    assert (export.size, export.sha256) == (len(sealed), hashlib.sha256(sealed).hexdigest())
    assert {a.size for a in export.attempts} == {len(sealed)}
    # Only the encrypted file was ever stored for this export.
    stored = await storage.list(f"tenants/acme/exports/{export.id}")
    assert [o.key.rsplit("/", 1)[-1] for o in stored] == [f"{PLAIN}.pgp"]


async def test_signed_export_carries_a_good_signature_of_the_tenant_key(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    tenant_with_keys: Tenant,
    partner_gpg: GpgHome,
    tenant_keys: KeyPair,
    tmp_path: Path,
) -> None:
    exporter = Exporter(db, storage, pgp_passphrase=SECRET)
    export = await run_export(db, exporter, tenant, encrypt={"sign": True})
    assert export.status == "delivered", export.error

    # The partner's gpg holds the tenant's public key (`courier keys export-public`).
    sealed = await collected(tmp_path, storage, f"{PLAIN}.pgp")
    opened, status = gpg_decrypt(sealed, partner_gpg)
    assert opened.startswith(b"Employee,Name,Date")
    assert "[GNUPG:] GOODSIG" in status
    assert f"[GNUPG:] VALIDSIG {tenant_keys.fingerprint}" in status


async def test_armored_export_to_an_account_key_is_named_asc_and_is_ascii(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    partner_gpg: GpgHome,
    tmp_path: Path,
) -> None:
    await provision.create_account(db, tenant, "acme-payroll", PASSWORD)
    await import_partner_key(db, partner_gpg, account="acme-payroll")
    exporter = Exporter(db, storage)
    export = await run_export(
        db, exporter, tenant, encrypt={"to": "account:acme-payroll", "armor": True}
    )
    assert export.status == "delivered", export.error
    assert export.file_name == f"{PLAIN}.asc"
    armored = await collected(tmp_path, storage, f"{PLAIN}.asc")
    text = armored.read_text("ascii")
    assert text.startswith("-----BEGIN PGP MESSAGE-----")
    assert text.rstrip().endswith("-----END PGP MESSAGE-----")
    opened, _ = gpg_decrypt(armored, partner_gpg)
    assert opened.startswith(b"Employee,Name,Date")


async def test_sample_export_is_encrypted_too(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    partner_gpg: GpgHome,
    tmp_path: Path,
) -> None:
    await import_partner_key(db, partner_gpg)
    spec_row = await make_spec(db, tenant, encrypt="pgp")
    exporter = Exporter(db, storage)
    asked = ExportRun(spec_id=spec_row.id, tenant_id=tenant.id, day=DAY, by="ops", test=True)
    sample_id = await commands.run(asked, exporter)
    assert sample_id is not None
    assert await exporter.process(sample_id) == "delivered"
    # Marked as a sample, and as encrypted: `/outbound/test/TEST_<name>.pgp`.
    sealed = await collected(tmp_path, storage, f"test/TEST_{PLAIN}.pgp")
    opened, _ = gpg_decrypt(sealed, partner_gpg)
    assert opened.startswith(b"Employee,Name,Date")


async def test_rotation_overlap_encrypts_to_every_unexpired_partner_key(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    partner_gpg: GpgHome,
    tmp_path: Path,
) -> None:
    newer = GpgHome("partner2")
    try:
        newer.generate("Acme Payroll 2027 <payroll-it@acme.example>")
        await import_partner_key(db, partner_gpg)
        await import_partner_key(db, newer)
        export = await run_export(db, Exporter(db, storage), tenant, encrypt="pgp")
        assert export.status == "delivered", export.error
        sealed = await collected(tmp_path, storage, f"{PLAIN}.pgp")
        # Either of the partner's keys opens it, so their switch-over needs no timing.
        assert gpg_decrypt(sealed, partner_gpg)[0] == gpg_decrypt(sealed, newer)[0]
    finally:
        newer.close()


@pytest.mark.usefixtures("quick_exporter")
@pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass")
async def test_partner_collects_a_signed_export_over_sftp_and_their_gpg_opens_and_verifies_it(
    pgp_settings: Settings,
    db: Database,
    tenant_with_keys: Tenant,
    timesheets: list[Timesheet],
    partner_gpg: GpgHome,
    tenant_keys: KeyPair,
    tmp_path: Path,
) -> None:
    settings, tenant = pgp_settings, tenant_with_keys
    await make_spec(
        db,
        tenant,
        created=datetime.now(UTC) - timedelta(minutes=1),
        schedule={"cron": "0 6 1 1 *", "timezone": "Europe/London"},  # out of the way
        encrypt={"sign": True},
    )
    await provision.create_account(
        db, tenant, "acme-payroll", PASSWORD, auth_policy="password",
        allowed_cidrs=["127.0.0.1/32"],
    )  # fmt: skip
    async with running("exporter", settings), running("gateway", settings):
        code, out = await courier(
            cli_env(settings), "exports", "run", "payroll", "--tenant", "acme", "--day", str(DAY)
        )
        assert code == 0 and f"{PLAIN}.pgp" in out and "delivered" in out, out
        got = await openssh_sftp(
            settings.gateway_port, "acme-payroll",
            ["ls /outbound", f"get /outbound/{PLAIN}.pgp {tmp_path}/{PLAIN}.pgp"],
            password=PASSWORD,
        )  # fmt: skip
    assert f"{PLAIN}.pgp" in got.stdout, got.stderr
    opened, status = gpg_decrypt(tmp_path / f"{PLAIN}.pgp", partner_gpg)
    assert opened.decode().splitlines()[0] == "Employee,Name,Date,Start,Hours,Cost centre"
    assert f"[GNUPG:] VALIDSIG {tenant_keys.fingerprint}" in status


# ------------------------------------------------------------------ refusals


async def _no_key(db: Database, tenant: Tenant, partner: GpgHome, pair: KeyPair) -> None:
    """Nothing imported."""


async def _a_feed_key(db: Database, tenant: Tenant, partner: GpgHome, pair: KeyPair) -> None:
    """The partner's key counts for one inbound feed, not for the tenant's exports."""
    await provision.upsert_feed(db, tenant, "leave", "leave_balances", "leave_*.csv", {})
    await import_partner_key(db, partner, feed="leave")


async def _partner_key(db: Database, tenant: Tenant, partner: GpgHome, pair: KeyPair) -> None:
    await import_partner_key(db, partner)


async def _both_keys(db: Database, tenant: Tenant, partner: GpgHome, pair: KeyPair) -> None:
    await import_partner_key(db, partner)
    await pgp_keys.import_key(
        db, "acme", pair.secret, owner="courier", passphrase=PASSPHRASE, actor="support"
    )


NO_KEY = "no valid partner key to encrypt to: import the partner's public key"
REFUSALS = {
    "no partner key": (_no_key, "pgp", None, NO_KEY),
    "only a feed's key": (_a_feed_key, "pgp", None, NO_KEY),
    "a named key not imported": (
        _partner_key, {"to": "AB12" * 10}, None, f"no partner key {'AB12' * 10} for this tenant"
    ),
    "partner key expired": (
        _partner_key, "pgp", None, "no valid partner key to encrypt to (expired: {partner} on"
    ),
    "sign without a Courier key": (
        _partner_key, {"sign": True}, SECRET, "no valid Courier key pair to sign with"
    ),
    "sign without the passphrase": (
        _both_keys, {"sign": True}, None, "COURIER_PGP_PASSPHRASE is not set: Courier cannot sign"
    ),
    "sign with the wrong passphrase": (
        _both_keys, {"sign": True}, SecretStr("not it"),
        "could not encrypt: signing failed: Bad passphrase",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_export_that_cannot_be_encrypted_fails_with_the_reason_and_alerts(
    case: str,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    partner_gpg: GpgHome,
    tenant_keys: KeyPair,
) -> None:
    setup, encrypt, passphrase, reason = REFUSALS[case]
    await setup(db, tenant, partner_gpg, tenant_keys)
    clock = ManualClock(datetime.now(UTC))
    if case == "partner key expired":
        clock.advance(days=3 * 365)  # the partner's key was made for two years
    exporter = Exporter(db, storage, clock=clock.now, pgp_passphrase=passphrase)
    export = await run_export(db, exporter, tenant, encrypt=encrypt)

    reason = reason.format(partner=partner_gpg.fingerprint)
    assert export.status == "failed"
    assert reason in (export.error or "")
    [alert] = await staged(db)
    assert alert.kind == "export_build_failed"  # type: ignore[attr-defined]
    assert reason in alert.summary  # type: ignore[attr-defined]
    assert PASSPHRASE not in alert.summary  # type: ignore[attr-defined]
    # Nothing reached the partner, and no plaintext was left in the store.
    assert await storage.list("tenants/acme/outbound") == []
    assert await storage.list(f"tenants/acme/exports/{export.id}") == []


# ------------------------------------------------------------------ the spec


def test_encrypt_pgp_is_short_for_binary_unsigned_to_the_partner() -> None:
    spec = spec_model(encrypt="pgp")
    assert spec.encrypt is not None
    assert (spec.encrypt.to, spec.encrypt.sign, spec.encrypt.armor) == ("partner", False, False)
    assert spec.encrypt.suffix == ".pgp"
    fingerprint = "ab12 " * 10
    spec = spec_model(encrypt={"to": fingerprint, "armor": True})
    assert spec.encrypt is not None
    assert (spec.encrypt.to, spec.encrypt.suffix) == ("AB12" * 10, ".asc")


@pytest.mark.parametrize(
    ("encrypt", "message"),
    [
        ("zip", "Input should be 'pgp'"),
        ({"to": "vendor@example.com"}, "encrypt.to is `partner`, `account:NAME`"),
        ({"to": "ABCD1234"}, "a key's full fingerprint"),
        ({"sign": True, "compress": True}, "Extra inputs are not permitted"),
    ],
)
def test_unclear_encryption_is_refused_when_applied(encrypt: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec_model(encrypt=encrypt)
