"""Account and session pages: allowlists, key fingerprints as OpenSSH prints them, key
ages and password dates, never a password hash; gateway sessions with their audit; and a
customer kept to their own tenant's accounts and sessions."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import update

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount, Tenant
from courier.gateway import admin
from tests.support.console import api_client, make_token, make_user, sign_in
from tests.support.tenant_objects import gateway_session

PASSWORD = "Sftp-Account-Password-2026"


@dataclass
class Account:
    id: uuid.UUID
    username: str
    password_hash: str
    fingerprint: str  # as `ssh-keygen -l -E sha256` prints it
    expires: datetime
    session: str


def _openssh_fingerprint(public_key: str, path: Path) -> str:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH ssh-keygen is not installed (make test installs openssh-client)")
    path.write_text(public_key + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


async def _account(db: Database, tenant: Tenant, username: str, tmp_path: Path) -> Account:
    """An account as `courier accounts create` and `add-key` make it, with a session."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{username}@vendor")
    public = key.export_public_key().decode().strip()
    created = await provision.create_account(
        db, tenant, username, PASSWORD, allowed_cidrs=["192.0.2.0/24", "2001:db8::/32"]
    )
    await admin.add_key(db, username, public)
    expires = datetime.now(UTC) + timedelta(days=40)
    async with db.transaction() as s:
        await s.execute(
            update(SftpAccount)
            .where(SftpAccount.id == created.id)
            .values(password_expires_at=expires)
        )
    return Account(
        id=created.id,
        username=username,
        password_hash=created.password_hash or "",
        fingerprint=_openssh_fingerprint(public, tmp_path / f"{username}.pub"),
        expires=expires,
        session=await gateway_session(db, tenant, username),
    )


@pytest.fixture
async def payroll(db: Database, tenant: Tenant, tmp_path: Path) -> Account:
    return await _account(db, tenant, "acme-payroll", tmp_path)


@pytest.fixture
async def globex(db: Database, tmp_path: Path) -> Account:
    other = await provision.ensure_tenant(db, "globex", "Globex Corp", "Europe/London")
    return await _account(db, other, "globex-payroll", tmp_path)


async def test_account_pages_show_allowlist_fingerprints_and_expiry_never_the_hash(
    db, app, payroll
) -> None:
    assert payroll.password_hash.startswith("$argon2")
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        listed = (await http.get("/accounts")).text
        detail = (await http.get(f"/accounts/{payroll.id}")).text
    for html in (listed, detail):
        assert payroll.fingerprint.startswith("SHA256:") and payroll.fingerprint in html
        assert "<code>192.0.2.0/24</code>" in html and "<code>2001:db8::/32</code>" in html
        assert payroll.expires.strftime("%Y-%m-%d") in html
        assert payroll.password_hash not in html and "$argon2" not in html
    assert "ssh-ed25519" in detail and "acme-payroll@vendor" in detail
    assert "upload, read, delete" in detail
    # Its gateway sessions, linked to their audit.
    assert f'href="/sessions/{payroll.session}"' in detail


async def test_account_api_gives_the_same_facts_and_no_secret(db, app, payroll) -> None:
    token = await make_token(db, "support")
    async with api_client(app, token) as http:
        listed = await http.get("/api/accounts")
        one = await http.get(f"/api/accounts/{payroll.id}")
    for answer in (listed, one):
        assert payroll.password_hash not in answer.text and "$argon2" not in answer.text
        assert "password_hash" not in answer.text
    account = one.json()
    assert account["allowed_cidrs"] == ["192.0.2.0/24", "2001:db8::/32"]
    (key,) = account["keys"]
    assert (key["fingerprint"], key["algorithm"], key["age_days"]) == (
        payroll.fingerprint, "ssh-ed25519", 0,
    )  # fmt: skip
    assert (account["password_set"], account["password_state"]) == (True, "valid")
    assert account["permissions"] == ["upload", "read", "delete"]
    assert listed.json() == [account]


async def test_session_pages_show_the_audit_lines(db, app, payroll) -> None:
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        listed = (await http.get("/sessions", params={"username": "acme-payroll"})).text
        detail = (await http.get(f"/sessions/{payroll.session}")).text
    assert f'href="/sessions/{payroll.session}"' in listed
    assert "192.0.2.10" in listed and "succeeded" in listed
    for kind in ("login_succeeded", "upload", "disconnected"):
        assert f"<td>{kind}</td>" in detail
    assert "/inbound/leave_acme.csv" in detail


async def test_a_customer_sees_their_own_accounts_and_sessions_only(
    db, app, payroll, globex
) -> None:
    await make_user(db, "cara", "customer", "acme")
    token = await make_token(db, "customer", "acme")
    async with api_client(app) as http:
        await sign_in(http, "cara")
        for listing in ("/accounts", "/sessions"):
            page = (await http.get(listing, params={"tenant": "globex"})).text
            assert "globex-payroll" not in page and globex.fingerprint not in page
        assert (await http.get(f"/accounts/{payroll.id}")).status_code == 200
        assert (await http.get(f"/sessions/{payroll.session}")).status_code == 200
        for url, missing in (
            (f"/accounts/{globex.id}", f"/accounts/{uuid.uuid4()}"),
            (f"/sessions/{globex.session}", "/sessions/s-nobody"),
        ):
            foreign, absent = await http.get(url), await http.get(missing)
            assert foreign.status_code == absent.status_code == 404
            assert "globex" not in foreign.text
    async with api_client(app, token) as api:
        assert [a["username"] for a in (await api.get("/api/accounts")).json()] == ["acme-payroll"]
        sessions = (await api.get("/api/gateway/sessions")).json()
        assert [s["session"] for s in sessions] == [payroll.session]
        for url in (f"/api/accounts/{globex.id}", f"/api/gateway/sessions/{globex.session}"):
            assert (await api.get(url)).status_code == 404
