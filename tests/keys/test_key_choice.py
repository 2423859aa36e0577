"""Which keys Courier uses: its own key pair opens what partners send, a signature
counts only from a partner key of the uploading account, the feed or the tenant, and an
export goes to the partner's key, opened by the partner's own `gpg`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from courier.cli import provision
from courier.common import pgp, pgp_keys
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from tests.support.pgp import PASSPHRASE, GpgHome, KeyPair, gpg_decrypt, gpg_encrypt

ACCOUNT_PASSWORD = "Sftp-Account-Password-2026"


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "leave_20261201.csv"
    path.write_text("employee_id,balance\nE1,12.5\nE2,3\n")
    return path


async def _decrypt(db: Database, tenant: Tenant, sealed: Path, **scope: object) -> pgp.Decrypted:
    async with db.session() as s:
        keys = await pgp_keys.decryption_keys(s, tenant.id, passphrase=PASSPHRASE, **scope)  # type: ignore[arg-type]
    with keys.keyring() as ring:
        return ring.decrypt(sealed, sealed.with_suffix(".out"), require_signature=True)


async def test_a_signature_counts_only_from_a_partner_key_of_that_account_or_the_tenant(
    db: Database,
    tenant: Tenant,
    tenant_keys: KeyPair,
    partner_gpg: GpgHome,
    stranger_gpg: GpgHome,
    tmp_path: Path,
) -> None:
    for user in ("acme-payroll", "acme-hr"):
        await provision.create_account(db, tenant, user, ACCOUNT_PASSWORD)
    await pgp_keys.import_key(
        db, "acme", tenant_keys.secret, owner="courier", passphrase=PASSPHRASE, actor="t"
    )
    await pgp_keys.import_key(db, "acme", partner_gpg.export(), account="acme-payroll", actor="t")
    sealed = gpg_encrypt(_plain(tmp_path), tenant_keys, signer=partner_gpg)

    opened = await _decrypt(db, tenant, sealed, account="acme-payroll")
    assert opened.signed and opened.signer == partner_gpg.fingerprint
    assert sealed.with_suffix(".out").read_text() == _plain(tmp_path).read_text()
    # Another account of the same tenant cannot pass off the payroll vendor's files.
    with pytest.raises(pgp.PgpRefused, match="signed by a key this tenant does not know"):
        await _decrypt(db, tenant, sealed, account="acme-hr")

    # A tenant-wide key counts for every account; an unsigned file does not pass.
    await pgp_keys.import_key(db, "acme", stranger_gpg.export(), actor="t")
    signed_by_stranger = gpg_encrypt(_plain(tmp_path), tenant_keys, signer=stranger_gpg)
    assert (await _decrypt(db, tenant, signed_by_stranger, account="acme-hr")).signed
    unsigned = gpg_encrypt(_plain(tmp_path), tenant_keys, dst=tmp_path / "unsigned.pgp")
    with pytest.raises(pgp.PgpRefused, match="must be signed"):
        await _decrypt(db, tenant, unsigned, account="acme-hr")


async def test_a_tenant_without_a_key_pair_tells_the_partner_to_ask_for_one(
    db: Database, tenant: Tenant
) -> None:
    async with db.session() as s:
        with pytest.raises(pgp.PgpRefused, match="ask support for the tenant's public key"):
            await pgp_keys.decryption_keys(s, tenant.id, passphrase=PASSPHRASE)


async def test_an_export_is_encrypted_to_the_partner_key_and_opened_by_the_partners_gpg(
    db: Database, tenant: Tenant, tenant_keys: KeyPair, partner_gpg: GpgHome, tmp_path: Path
) -> None:
    await pgp_keys.import_key(
        db, "acme", tenant_keys.secret, owner="courier", passphrase=PASSPHRASE, actor="t"
    )
    async with db.session() as s:
        with pytest.raises(pgp_keys.KeysNotConfigured, match="no valid partner key"):
            await pgp_keys.encryption_keys(s, tenant.id)
    await pgp_keys.import_key(db, "acme", partner_gpg.export(), actor="t")
    async with db.session() as s:
        keys = await pgp_keys.encryption_keys(s, tenant.id, sign=True, passphrase=PASSPHRASE)
    assert keys.partners == [partner_gpg.fingerprint]
    plain = _plain(tmp_path)
    with keys.keyring() as ring:
        ring.encrypt(plain, tmp_path / "timesheets.csv.pgp", recipients=keys.partners, sign=True)
    opened, status = gpg_decrypt(tmp_path / "timesheets.csv.pgp", partner_gpg)
    assert opened == plain.read_bytes()
    assert "GOODSIG" in status and tenant_keys.fingerprint in status


async def test_a_key_limited_to_an_account_is_chosen_over_the_tenants_and_expired_ones_never(
    db: Database,
    tenant: Tenant,
    partner_gpg: GpgHome,
    stranger_gpg: GpgHome,
) -> None:
    await provision.create_account(db, tenant, "acme-payroll", ACCOUNT_PASSWORD)
    tenant_wide = await pgp_keys.import_key(db, "acme", stranger_gpg.export(), actor="t")
    limited = await pgp_keys.import_key(
        db, "acme", partner_gpg.export(), account="acme-payroll", actor="t"
    )
    async with db.session() as s:
        for_payroll = await pgp_keys.encryption_keys(s, tenant.id, account="acme-payroll")
        for_others = await pgp_keys.encryption_keys(s, tenant.id)
        named = await pgp_keys.encryption_keys(
            s, tenant.id, recipients=[partner_gpg.fingerprint.lower()]
        )
    assert for_payroll.partners == [partner_gpg.fingerprint]
    assert for_others.partners == [stranger_gpg.fingerprint]
    assert named.partners == [partner_gpg.fingerprint]

    # Past the limited key's expiry the tenant's key is used; past both, none.
    assert limited.key.expires_at is not None and tenant_wide.key.expires_at is not None
    after = limited.key.expires_at + timedelta(seconds=1)
    async with db.session() as s:
        if tenant_wide.key.expires_at > after:
            later = await pgp_keys.encryption_keys(s, tenant.id, account="acme-payroll", now=after)
            assert later.partners == [stranger_gpg.fingerprint]
        with pytest.raises(pgp_keys.KeysNotConfigured):
            await pgp_keys.encryption_keys(
                s, tenant.id, now=max(limited.key.expires_at, tenant_wide.key.expires_at)
            )
