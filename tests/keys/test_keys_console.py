"""The console shows OpenPGP keys (fingerprint, algorithm, user ids, expiry) on the keys
and account pages and in the API, never a key itself, and a customer only their own."""

from __future__ import annotations

from courier.cli import provision
from courier.common import pgp_keys
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.console.api import create_app
from tests.support.console import api_client, make_token, make_user, sign_in
from tests.support.pgp import PASSPHRASE, GpgHome, KeyPair

ACCOUNT_PASSWORD = "Sftp-Account-Password-2026"


async def test_keys_are_shown_with_their_expiry_and_never_their_secret_part(
    db: Database,
    storage: Storage,
    settings: Settings,
    tenant: Tenant,
    tenant_keys: KeyPair,
    partner_gpg: GpgHome,
    stranger_gpg: GpgHome,
) -> None:
    account = await provision.create_account(db, tenant, "acme-payroll", ACCOUNT_PASSWORD)
    own = await pgp_keys.import_key(
        db, "acme", tenant_keys.secret, owner="courier", passphrase=PASSPHRASE, actor="t"
    )
    await pgp_keys.import_key(db, "acme", partner_gpg.export(), account="acme-payroll", actor="t")
    other = await provision.ensure_tenant(db, "globex", "Globex Corp", "Europe/London")
    await pgp_keys.import_key(db, other.slug, stranger_gpg.export(), actor="t")
    app = create_app(db, storage, settings)

    async with api_client(app, await make_token(db, "support")) as http:
        listed = (await http.get("/api/keys", params={"tenant": "acme"})).json()
        shown = (await http.get(f"/api/accounts/{account.id}")).json()
        everything = (await http.get("/api/keys")).text
    assert [(k["owner"], k["fingerprint"]) for k in listed] == [
        ("courier", tenant_keys.fingerprint),
        ("partner", partner_gpg.fingerprint),
    ]
    mine = listed[0]
    assert mine["algorithm"] == "eddsa/ed25519" and mine["user_ids"] == own.view.user_ids
    assert mine["expires_at"] and mine["days_left"] > 600 and mine["expired"] is False
    assert [k["fingerprint"] for k in shown["pgp_keys"]] == [partner_gpg.fingerprint]
    assert stranger_gpg.fingerprint in everything
    for text in (str(listed), str(shown), everything):
        assert "BEGIN PGP" not in text and "secret_key" not in text and "public_key" not in text

    await make_user(db, "ana", role="customer", tenant="globex")
    async with api_client(app) as http:
        await sign_in(http, "ana")
        page = (await http.get("/keys")).text
        theirs = (await http.get("/api/keys")).json()
        acme_only = (await http.get("/api/keys", params={"tenant": "acme"})).json()
    assert stranger_gpg.fingerprint in page and tenant_keys.fingerprint not in page
    assert [k["fingerprint"] for k in theirs] == [stranger_gpg.fingerprint]
    assert acme_only == []

    await make_user(db, "sam", role="support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        keys_page = (await http.get("/keys", params={"tenant": "acme"})).text
        account_page = (await http.get(f"/accounts/{account.id}")).text
    assert tenant_keys.fingerprint in keys_page and partner_gpg.fingerprint in keys_page
    assert "Acme Payroll &lt;payroll-it@acme.example&gt;" in keys_page
    assert stranger_gpg.fingerprint not in keys_page
    assert "OpenPGP keys" in account_page and partner_gpg.fingerprint in account_page
    assert "BEGIN PGP" not in keys_page + account_page
