"""`courier users` and `courier tokens` as an operator runs them: secrets printed once,
refusals explained with exit code 2, every change in the console audit as `cli:<user>`."""

from __future__ import annotations

import getpass
import re

import pyotp
import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models_console import ApiToken, ConsoleAuditEntry, ConsoleUser
from courier.common.passwords import verify_password
from courier.common.settings import Settings
from courier.console.api import create_app
from tests.support.cli import cli_env, courier
from tests.support.console import api_client

SHOWN = re.compile(r"password \(shown once\): (\S+)")

# Each command is a process of its own; the handlers under it are tested on both
# databases in tests/console/test_admin_pages.py, so the command runs on one.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    # Wide enough that tables are never cut short.
    return cli_env(settings, COLUMNS="250")


async def _user(db: Database, username: str) -> ConsoleUser:
    async with db.session() as s:
        user = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    assert user is not None
    return user


async def test_create_prints_a_generated_password_and_totp_link_once_and_list_shows_neither(
    db, env, tenant
) -> None:
    code, out = await courier(
        env, "users", "create", "carol", "--role", "customer", "--tenant", "acme",
        "--email", "carol@acme.example", "--totp",
    )  # fmt: skip
    assert code == 0, out
    assert "user carol created: customer of acme" in out
    password = SHOWN.search(out).group(1)  # type: ignore[union-attr]
    uri = re.search(r"authenticator link \(shown once\): (otpauth://\S+)", out).group(1)  # type: ignore[union-attr]
    carol = await _user(db, "carol")
    assert verify_password(carol.password_hash, password)
    assert carol.totp_secret and pyotp.parse_uri(uri).secret == carol.totp_secret

    code, listed = await courier(env, "users", "list")
    assert code == 0, listed
    # Piped, a table is tab-separated lines (`courier` joins the words with spaces).
    assert re.search(r"carol customer acme yes yes - -", listed), listed
    for secret in (password, carol.password_hash, carol.totp_secret):
        assert secret not in listed

    async with db.session() as s:
        entry = await s.scalar(
            select(ConsoleAuditEntry).where(ConsoleAuditEntry.action == "user.create")
        )
    assert entry is not None and entry.actor == f"cli:{getpass.getuser()}"


async def test_refusals_say_why_and_exit_2(db, env, tenant) -> None:
    code, out = await courier(env, "users", "create", "dave", "--role", "customer")
    assert code == 2 and "a customer user or token belongs to one tenant" in out
    code, out = await courier(env, "users", "disable", "nobody")
    assert code == 2 and "no user 'nobody'" in out


async def test_password_stdin_sets_the_given_password_and_prints_none(db, env) -> None:
    chosen = "a long chosen passphrase"
    code, out = await courier(
        env, "users", "create", "sam", "--role", "support", "--password-stdin", stdin=chosen + "\n"
    )
    assert code == 0, out
    assert "shown once" not in out and chosen not in out
    assert verify_password((await _user(db, "sam")).password_hash, chosen)

    code, out = await courier(
        env, "users", "reset-password", "sam", "--password-stdin", stdin="short\n"
    )
    assert code == 2 and "at least 12 characters" in out

    code, out = await courier(env, "users", "reset-password", "sam")
    assert code == 0 and "password of sam changed" in out
    password = SHOWN.search(out).group(1)  # type: ignore[union-attr]
    sam = await _user(db, "sam")
    assert verify_password(sam.password_hash, password) and not verify_password(
        sam.password_hash, chosen
    )


async def test_disable_enable_set_role_and_enroll_totp_change_the_user(db, env, tenant) -> None:
    assert (await courier(env, "users", "create", "sam", "--role", "support"))[0] == 0
    code, out = await courier(env, "users", "create", "sam", "--role", "support")
    assert code == 2 and "a user named 'sam' exists already" in out

    assert (await courier(env, "users", "disable", "sam"))[1] == "sam disabled"
    assert not (await _user(db, "sam")).enabled
    assert (await courier(env, "users", "enable", "sam"))[1] == "sam enabled"
    assert (await _user(db, "sam")).enabled

    code, out = await courier(env, "users", "set-role", "sam", "customer", "--tenant", "acme")
    assert code == 0 and out == "sam is now customer of acme"
    sam = await _user(db, "sam")
    assert sam.role == "customer" and sam.tenant_id == tenant.id
    code, out = await courier(env, "users", "set-role", "sam", "admin", "--tenant", "acme")
    assert code == 2 and "a admin sees every tenant" in out

    code, out = await courier(env, "users", "enroll-totp", "sam")
    assert code == 0 and "otpauth://totp/" in out
    assert (await _user(db, "sam")).totp_secret in out

    async with db.session() as s:
        actions = list(
            await s.scalars(
                select(ConsoleAuditEntry.action)
                .where(ConsoleAuditEntry.actor == f"cli:{getpass.getuser()}")
                .order_by(ConsoleAuditEntry.at)
            )
        )
    assert actions == [
        "user.create", "user.disable", "user.enable", "user.set_role", "user.enroll_totp",
    ]  # fmt: skip


async def test_a_token_is_printed_once_opens_the_api_and_stops_when_revoked(
    db, env, settings, storage, tenant
) -> None:
    code, out = await courier(
        env, "tokens", "create", "bi-export", "--role", "customer", "--tenant", "acme",
        "--expires-days", "30",
    )  # fmt: skip
    assert code == 0, out
    assert "Copy it now: it is not shown again." in out
    token = re.search(r"token: (ctk_\S+)", out).group(1)  # type: ignore[union-attr]

    app = create_app(db, storage, settings)
    async with api_client(app, token) as api:
        assert (await api.get("/api/imports")).status_code == 200
        assert (await api.get("/api/audit")).status_code == 403

    async with db.session() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.name == "bi-export"))
    assert row is not None and row.expires_at is not None
    code, listed = await courier(env, "tokens", "list")
    assert code == 0 and f"bi-export {row.prefix} customer acme" in listed, listed
    assert token not in listed and row.token_hash not in listed

    code, out = await courier(env, "tokens", "revoke", row.prefix)
    assert code == 0 and f"token bi-export ({row.prefix}…) revoked" in out
    async with api_client(app, token) as api:
        assert (await api.get("/api/imports")).status_code == 401
    code, out = await courier(env, "tokens", "revoke", str(row.id))
    assert code == 2 and f"no single active token '{row.id}'" in out
