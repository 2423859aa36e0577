"""`courier keys …` as an operator runs it: partners' public keys and Courier's key pair
per tenant, fingerprints and expiry shown, secret parts never, refusals in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from courier.cli import provision
from courier.common import pgp
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.db.models_keys import PgpKey
from courier.common.settings import Settings
from tests.support.cli import cli_env, courier, courier_run
from tests.support.pgp import PASSPHRASE, GpgHome, KeyPair, gpg_encrypt

ACCOUNT_PASSWORD = "Sftp-Account-Password-2026"


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _one_line_error(code: int, out: str) -> None:
    assert code == 1 and out.startswith("error: "), out
    assert "Traceback" not in out


def _no_key_material(text: str) -> None:
    assert "BEGIN PGP" not in text and "PRIVATE KEY" not in text


async def _keys(db: Database) -> dict[str, PgpKey]:
    async with db.session() as s:
        return {k.fingerprint: k for k in await s.scalars(select(PgpKey))}


@pytest.fixture
def fresh_gpg() -> Iterator[GpgHome]:
    """A partner whose key this test may change."""
    home = GpgHome("fresh")
    try:
        yield home
    finally:
        home.close()


async def test_a_partner_key_is_imported_for_an_account_and_listed_with_its_expiry(
    settings: Settings, db: Database, tenant: Tenant, partner_gpg: GpgHome, tmp_path: Path
) -> None:
    env = cli_env(settings)
    await provision.create_account(db, tenant, "acme-payroll", ACCOUNT_PASSWORD)
    key_file = _file(tmp_path, "payroll.asc", partner_gpg.export())
    code, out = await courier(
        env, "keys", "import", key_file, "--tenant", "acme", "--account", "acme-payroll"
    )
    assert code == 0, out
    fingerprint = partner_gpg.fingerprint
    assert f"partner key for account acme-payroll {fingerprint}" in out
    assert "Acme Payroll <payroll-it@acme.example>" in out and "days left" in out
    stored = (await _keys(db))[fingerprint]
    assert stored.owner == "partner" and stored.secret_key is None
    assert stored.expires_at is not None

    code, listed = await courier(env, "keys", "list", "--tenant", "acme")
    assert code == 0 and fingerprint in listed and "account acme-payroll" in listed
    assert f"{stored.expires_at:%Y-%m-%d %H:%M:%S}" in listed
    days = (stored.expires_at - datetime.now(UTC)).days
    assert str(days) in listed.split() or str(days + 1) in listed.split()

    ran = await courier_run(env, "keys", "list", "--tenant", "acme", "--json")
    [shown] = json.loads(ran.stdout)
    assert shown["fingerprint"] == fingerprint and shown["account"] == "acme-payroll"
    assert shown["algorithm"] == "eddsa/ed25519" and shown["bits"] == 255
    assert datetime.fromisoformat(shown["expires_at"]) == stored.expires_at
    assert shown["days_left"] in (days, days + 1) and shown["expired"] is False
    _no_key_material(ran.stdout)

    # Binary exports (`gpg --export` without --armor) are taken too; an unknown
    # account and a file that is no key are refused in one line.
    binary = tmp_path / "payroll.gpg"
    binary.write_bytes(b"\x99" + b"\x00" * 40)
    code, out = await courier(env, "keys", "import", str(binary), "--tenant", "acme")
    _one_line_error(code, out)
    assert "no OpenPGP key found" in out
    code, out = await courier(
        env, "keys", "import", key_file, "--tenant", "acme", "--account", "nobody"
    )
    _one_line_error(code, out)
    assert "no SFTP account 'nobody'" in out


async def test_removing_a_key_is_audited_and_the_key_no_longer_counts(
    settings: Settings, db: Database, tenant: Tenant, partner_gpg: GpgHome, tmp_path: Path
) -> None:
    env = cli_env(settings)
    key_file = _file(tmp_path, "payroll.asc", partner_gpg.export())
    assert (await courier(env, "keys", "import", key_file, "--tenant", "acme"))[0] == 0
    fingerprint = partner_gpg.fingerprint
    code, out = await courier(env, "keys", "remove", fingerprint, "--tenant", "acme")
    assert code == 0 and f"partner key {fingerprint} removed from acme" in out
    assert await _keys(db) == {}
    async with db.session() as s:
        entries = list(await s.scalars(select(ConsoleAuditEntry).order_by(ConsoleAuditEntry.at)))
    assert [e.action for e in entries] == ["pgp_key.import", "pgp_key.remove"]
    removed = entries[-1]
    assert removed.actor.startswith("cli:") and removed.tenant_id == tenant.id
    assert removed.details["fingerprint"] == fingerprint
    _no_key_material(json.dumps(removed.details))

    code, out = await courier(env, "keys", "remove", fingerprint, "--tenant", "acme")
    _one_line_error(code, out)
    assert f"tenant acme has no OpenPGP key {fingerprint}" in out


async def test_partners_encrypt_to_the_generated_key_pair_that_export_public_prints(
    settings: Settings, db: Database, tenant: Tenant, fresh_gpg: GpgHome, tmp_path: Path
) -> None:
    env = cli_env(settings, COURIER_PGP_PASSPHRASE=PASSPHRASE)
    code, out = await courier(env, "keys", "generate", "--tenant", "acme")
    assert code == 0, out
    [key] = (await _keys(db)).values()
    assert f"Courier's key pair {key.fingerprint}" in out and "courier keys export-public" in out
    assert key.owner == "courier" and key.algorithm == "eddsa/ed25519"
    _no_key_material(out)

    ran = await courier_run(env, "keys", "export-public", "--tenant", "acme")
    assert ran.code == 0 and key.fingerprint in ran.stderr
    assert ran.stdout.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE" not in ran.stdout

    # The partner's own gpg takes the printed key and encrypts a file to it.
    fresh_gpg.import_key(ran.stdout)
    plain = tmp_path / "leave_20261201.csv"
    plain.write_text("employee_id,balance\nE1,12.5\n")
    sealed = gpg_encrypt(plain, ran.stdout)
    # Courier's stored secret key opens it, and only under the passphrase.
    assert key.secret_key is not None and "PRIVATE KEY" in key.secret_key
    with pgp.Keyring([key.secret_key], passphrase=PASSPHRASE) as ring:
        ring.decrypt(sealed, tmp_path / "opened")
    assert (tmp_path / "opened").read_bytes() == plain.read_bytes()
    with pytest.raises(pgp.PgpRefused):
        pgp.check_secret_key(key.secret_key, "not the passphrase")


async def test_without_a_passphrase_no_key_pair_is_made_or_imported(
    settings: Settings, db: Database, tenant: Tenant, tenant_keys: KeyPair, tmp_path: Path
) -> None:
    env = cli_env(settings)
    env.pop("COURIER_PGP_PASSPHRASE", None)
    code, out = await courier(env, "keys", "generate", "--tenant", "acme")
    _one_line_error(code, out)
    assert "set COURIER_PGP_PASSPHRASE first" in out
    secret = _file(tmp_path, "courier.asc", tenant_keys.secret)
    code, out = await courier(
        env, "keys", "import", secret, "--tenant", "acme", "--owner", "courier"
    )
    _one_line_error(code, out)
    assert "set COURIER_PGP_PASSPHRASE first" in out
    assert await _keys(db) == {}


async def test_courier_secret_key_is_imported_only_under_the_passphrase_protecting_it(
    settings: Settings,
    db: Database,
    tenant: Tenant,
    tenant_keys: KeyPair,
    fresh_gpg: GpgHome,
    tmp_path: Path,
) -> None:
    secret = _file(tmp_path, "courier.asc", tenant_keys.secret)
    args = ("keys", "import", secret, "--tenant", "acme", "--owner", "courier")

    code, out = await courier(cli_env(settings, COURIER_PGP_PASSPHRASE="another one"), *args)
    _one_line_error(code, out)
    assert "COURIER_PGP_PASSPHRASE does not unlock this secret key" in out

    fresh_gpg.generate("Unprotected <u@acme.example>")
    bare = _file(tmp_path, "bare.asc", fresh_gpg.export_secret())
    code, out = await courier(
        cli_env(settings, COURIER_PGP_PASSPHRASE=PASSPHRASE),
        "keys", "import", bare, "--tenant", "acme", "--owner", "courier",
    )  # fmt: skip
    _one_line_error(code, out)
    assert "not protected by a passphrase" in out
    assert await _keys(db) == {}

    code, out = await courier(cli_env(settings, COURIER_PGP_PASSPHRASE=PASSPHRASE), *args)
    assert code == 0, out
    assert f"Courier's key pair {tenant_keys.fingerprint}" in out
    _no_key_material(out)
    stored = (await _keys(db))[tenant_keys.fingerprint]
    assert stored.owner == "courier" and stored.secret_key == tenant_keys.secret
    assert "PRIVATE" not in stored.public_key

    # A public key alone cannot be Courier's key pair; the pair is the tenant's.
    public = _file(tmp_path, "public.asc", tenant_keys.public)
    code, out = await courier(
        cli_env(settings, COURIER_PGP_PASSPHRASE=PASSPHRASE),
        "keys", "import", public, "--tenant", "acme", "--owner", "courier",
    )  # fmt: skip
    _one_line_error(code, out)
    assert "needs its secret key" in out


async def test_a_partner_key_holding_a_secret_key_is_refused(
    settings: Settings, db: Database, tenant: Tenant, tenant_keys: KeyPair, tmp_path: Path
) -> None:
    secret = _file(tmp_path, "sent-by-mistake.asc", tenant_keys.secret)
    code, out = await courier(cli_env(settings), "keys", "import", secret, "--tenant", "acme")
    _one_line_error(code, out)
    assert "holds a secret key: a partner's key is imported public only" in out
    _no_key_material(out)
    assert await _keys(db) == {}


async def test_an_expired_key_is_refused_at_import(
    settings: Settings, db: Database, tenant: Tenant, fresh_gpg: GpgHome, tmp_path: Path
) -> None:
    fresh_gpg.generate("Old Vendor <old@vendor.example>", "1y", faked_time="20200101T000000")
    old = _file(tmp_path, "old.asc", fresh_gpg.export())
    code, out = await courier(cli_env(settings), "keys", "import", old, "--tenant", "acme")
    _one_line_error(code, out)
    assert f"key {fresh_gpg.fingerprint} expired on 2020-12-31" in out
    assert "extend its expiry" in out
    assert await _keys(db) == {}


async def test_a_partner_who_extends_their_key_sends_it_again_and_its_expiry_is_refreshed(
    settings: Settings, db: Database, tenant: Tenant, fresh_gpg: GpgHome, tmp_path: Path
) -> None:
    env = cli_env(settings)
    fingerprint = fresh_gpg.generate("Vendor <it@vendor.example>", "20d")
    key_file = _file(tmp_path, "v1.asc", fresh_gpg.export())
    assert (await courier(env, "keys", "import", key_file, "--tenant", "acme"))[0] == 0
    async with db.transaction() as s:
        key = await s.scalar(select(PgpKey))
        assert key is not None
        first_expiry = key.expires_at
        key.reminded_days = 30  # the first reminder went out

    fresh_gpg.gpg("--quick-set-expire", fingerprint, "2y")
    fresh_gpg.gpg("--quick-set-expire", fingerprint, "2y", "*")
    key_file = _file(tmp_path, "v2.asc", fresh_gpg.export())
    code, out = await courier(env, "keys", "import", key_file, "--tenant", "acme")
    assert code == 0 and f"{fingerprint}" in out and "refreshed" in out
    [key] = (await _keys(db)).values()
    assert first_expiry is not None and key.expires_at is not None
    assert key.expires_at - first_expiry > timedelta(days=300)
    assert key.reminded_days is None  # reminded again before the new expiry

    code, out = await courier(
        env, "keys", "import", key_file, "--tenant", "acme", "--feed", "leave-balances"
    )
    _one_line_error(code, out)
    assert "no feed 'leave-balances'" in out
