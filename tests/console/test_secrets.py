"""Secrets stay secret: a console user's password and TOTP secret, an API token, and the
hashes kept of them (and of an SFTP account's password) appear in no page, no API answer,
no header and no log line, whoever looks, however they signed in."""

from __future__ import annotations

import pyotp

from courier.common.db.models import SftpAccount
from courier.common.db.models_console import ConsoleUser
from tests.support.console import (
    PASSWORD,
    api_client,
    make_api_token,
    make_token,
    make_user,
    sign_in,
)
from tests.support.console_routes import endpoints
from tests.support.tenant_objects import ACCOUNT_PASSWORD, populate

SAMS_PASSWORD = "sam's own passphrase, 2026"
MISTYPED = "sam's mistyped passphrase 7"


async def test_no_page_api_answer_or_log_line_shows_a_secret(db, app, logs) -> None:
    objects = await populate(db, app.state.storage, "acme")
    sam = await make_user(db, "sam", "support", password=SAMS_PASSWORD, totp=True)
    token_row, sams_token = await make_api_token(db, "support", name="sam-robot")
    await make_user(db, "ann", "admin")
    admins_token = await make_token(db, "admin", name="ann-robot")
    async with db.session() as s:
        account = await s.get(SftpAccount, objects.account.id)
        kept = await s.get(ConsoleUser, sam.id)
    assert account and account.password_hash and kept and kept.totp_secret
    secrets = {
        "sam's password": SAMS_PASSWORD,
        "sam's mistyped password": MISTYPED,
        "the admin's password": PASSWORD,
        "sam's TOTP secret": kept.totp_secret,
        "sam's password hash": kept.password_hash,
        "sam's token": sams_token,
        "the admin's token": admins_token,
        "the token's hash": token_row.token_hash,
        "the SFTP account's password": ACCOUNT_PASSWORD,
        "the SFTP account's password hash": account.password_hash,
    }
    fill = objects.fill(sam, token_row)

    shown: list[str] = []
    seen = 0
    async with (
        api_client(app) as as_admin,
        api_client(app, admins_token) as by_token,
        api_client(app) as as_sam,
        api_client(app, sams_token) as sams_robot,
    ):
        await sign_in(as_admin, "ann")
        mistyped = await as_sam.post("/signin", data={"username": "sam", "password": MISTYPED})
        assert mistyped.status_code == 401
        code = pyotp.TOTP(kept.totp_secret).now()
        await sign_in(as_sam, "sam", SAMS_PASSWORD, code)
        for endpoint in endpoints(app):
            if endpoint.method != "GET":
                continue
            for who, http in (("admin", as_admin), ("token", by_token), ("sam", as_sam),
                              ("sam's token", sams_robot)):  # fmt: skip
                answer = await http.get(endpoint.url(fill))
                seen += answer.status_code == 200
                text = answer.text + "".join(f"{k}: {v}\n" for k, v in answer.headers.items())
                shown += [f"{who} {endpoint}: {name}" for name, s in secrets.items() if s in text]
    assert shown == []
    assert seen > 100  # the walk read real pages, not a wall of refusals

    out, err = logs.readouterr()
    assert '"event": "console sign-in"' in err  # the log lines were captured
    assert [name for name, s in secrets.items() if s in out + err] == []
