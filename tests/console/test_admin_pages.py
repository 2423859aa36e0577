"""People and access in the console: users and tokens (admin), the audit (staff).

Secrets appear once, on the page that made them, and never again in a page, an API
answer or a log line.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pyotp
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models_console import ApiToken, ConsoleUser
from tests.support.console import PASSWORD, api_client, make_token, make_user, sign_in
from tests.support.fixtures_data import leave_csv

_SECRET = re.compile(r'<code class="secret">([^<]+)</code>')


async def _admin(http: httpx.AsyncClient, db: Database, name: str = "ann") -> str:
    """`http` signed in as a new admin; the CSRF token of their pages."""
    await make_user(db, name, "admin")
    return await sign_in(http, name)


async def _add_carol(http: httpx.AsyncClient, csrf: str, **more: str) -> httpx.Response:
    """The new-user form, filled in for carol, a customer of acme."""
    form = {"csrf": csrf, "username": "carol", "role": "customer", "tenant": "acme", **more}
    return await http.post("/users", data=form)


async def _add_token(http: httpx.AsyncClient, csrf: str) -> httpx.Response:
    """The new-token form, filled in for a support token named bi."""
    return await http.post("/tokens", data={"csrf": csrf, "name": "bi", "role": "support"})


def _shown_once(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    return _SECRET.findall(page.text)


async def test_admin_creates_a_customer_user_who_signs_in_and_sees_only_their_tenant(
    db, app, tenant, other_tenant, feed, send
) -> None:
    for owner in (tenant, other_tenant):
        await feed("leave-balances", "leave_balances", "leave_*.csv", to=owner)
        await send(f"leave_{owner.slug}.csv", leave_csv("E1,annual,8,2026-11-01"), to=owner)
    async with api_client(app) as admin:
        csrf = await _admin(admin, db)
        created = await _add_carol(admin, csrf, email="carol@acme.example")
        username, password = _shown_once(created)
        assert username == "carol" and len(password) >= 20
        listed = await admin.get("/users")
        assert "carol" in listed.text and "carol@acme.example" in listed.text

    async with api_client(app) as carol:
        await sign_in(carol, "carol", password)
        seen = (await carol.get("/api/imports")).json()
        assert [i["file_name"] for i in seen] == ["leave_acme.csv"]
        page = await carol.get("/imports")
        assert "carol · customer · acme" in page.text
        assert "leave_acme.csv" in page.text and "leave_globex.csv" not in page.text
        assert (await carol.get("/users")).status_code == 403
        assert (await carol.get("/audit")).status_code == 403


async def test_support_gets_403_on_users_and_tokens_but_reads_the_audit(db, app) -> None:
    await make_user(db, "sam", "support")
    async with api_client(app) as http:
        await sign_in(http, "sam")
        for path in ("/users", "/tokens", "/api/users", "/api/tokens"):
            assert (await http.get(path)).status_code == 403, path
        assert (await http.get("/audit")).status_code == 200
        assert (await http.get("/api/audit")).status_code == 200
    token = await make_token(db, "support")
    async with api_client(app, token) as api:
        refused = await api.post("/api/users", json={"username": "eve", "role": "admin"})
        assert refused.status_code == 403
    async with db.session() as s:
        assert await s.scalar(select(ConsoleUser).where(ConsoleUser.username == "eve")) is None


async def test_audit_page_lists_the_creation_with_its_actor_and_filters_it(db, app, tenant) -> None:
    async with api_client(app) as http:
        csrf = await _admin(http, db)
        await _add_carol(http, csrf)
        audit = await http.get("/audit")
        row = re.search(r"<tr>\s*<td[^>]*>[^<]*</td>\s*<td>ann.*?</tr>", audit.text, re.S)
        assert row and "user.create" in row.group(0)
        assert "created customer user carol of acme" in row.group(0)

        mine = await http.get("/audit", params={"actor": "ann", "action": "user", "tenant": "acme"})
        assert "created customer user carol" in mine.text
        others = await http.get("/audit", params={"actor": "tests"})
        assert "created customer user carol" not in others.text
        later = await http.get("/audit", params={"since": "2999-01-01"})
        assert "created customer user carol" not in later.text


async def test_audit_pages_go_from_newest_to_oldest_without_repeats(db, app) -> None:
    token = await make_token(db, "admin")
    async with api_client(app, token) as api:
        for n in range(7):
            made = await api.post("/api/tokens", json={"name": f"t{n}", "role": "support"})
            assert made.status_code == 201
        seen: list[str] = []
        after = None
        while True:
            params = {"limit": 3, "action": "token.create", **({"after": after} if after else {})}
            page = (await api.get("/api/audit", params=params)).json()
            seen += [e["summary"] for e in page["entries"]]
            after = page["next"]
            if after is None:
                break
    # Seven from the API, and the one behind the test's own token, newest first.
    assert len(seen) == len(set(seen)) == 8
    assert seen[0].startswith("created support token t6") and "tests" in seen[-1]


async def test_passwords_totp_secrets_and_tokens_are_shown_once_and_never_again(
    db, app, tenant, logs
) -> None:
    async with api_client(app) as http:
        csrf = await _admin(http, db)
        created = await _add_carol(http, csrf, totp="true")
        _, first_password, uri = _shown_once(created)
        assert uri.startswith("otpauth://totp/") and "carol" in uri
        async with db.session() as s:
            carol = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == "carol"))
        assert carol is not None and carol.totp_secret in uri

        reset = await http.post(f"/users/{carol.id}/reset-password", data={"csrf": csrf})
        _, password = _shown_once(reset)
        [token] = _shown_once(await _add_token(http, csrf))
        assert token.startswith("ctk_")

        # The new password and the authenticator work; the first password no longer does.
        async with api_client(app) as carol_http:
            signin = {"username": "carol", "password": first_password, "next": "/"}
            code = pyotp.TOTP(carol.totp_secret).now()
            assert (await carol_http.post("/signin", data=signin)).status_code == 401
            signin.update(password=password, code=code)
            assert (await carol_http.post("/signin", data=signin)).status_code == 303
        async with api_client(app, token) as bearer:
            assert (await bearer.get("/api/imports")).status_code == 200

        later = [
            await http.get(path)
            for path in (
                "/users", f"/users/{carol.id}", "/tokens", "/audit",
                "/api/users", f"/api/users/{carol.id}", "/api/tokens", "/api/audit",
            )
        ]  # fmt: skip
    async with db.session() as s:
        carol = await s.get(ConsoleUser, carol.id)
        stored = await s.scalar(select(ApiToken.token_hash).where(ApiToken.name == "bi"))
    secrets = [first_password, password, carol.totp_secret, token, carol.password_hash, stored]
    for answer in later:
        assert answer.status_code == 200, answer.url
        for secret in secrets:
            assert secret not in answer.text, (answer.url, secret)
    for key in ("password_hash", "totp_secret", "token_hash"):
        assert all(key not in answer.text for answer in later)
    logged = logs.readouterr()
    assert '"event": "console user created"' in logged.err
    for secret in secrets:
        assert secret not in logged.out + logged.err


async def test_disabling_a_user_ends_their_session_and_enabling_lets_them_back(
    db, app, tenant
) -> None:
    carol = await make_user(db, "carol", "customer", "acme")
    async with api_client(app) as http, api_client(app) as carol_http:
        csrf = await _admin(http, db)
        await sign_in(carol_http, "carol")
        assert (await carol_http.get("/api/imports")).status_code == 200

        off = await http.post(f"/users/{carol.id}/disable", data={"csrf": csrf})
        assert off.status_code == 303 and "notice=" in off.headers["location"]
        assert "disabled" in (await http.get(off.headers["location"])).text
        assert (await carol_http.get("/api/imports")).status_code == 401
        refused = await carol_http.post("/signin", data={"username": "carol", "password": PASSWORD})
        assert refused.status_code == 401

        await http.post(f"/users/{carol.id}/enable", data={"csrf": csrf})
        await sign_in(carol_http, "carol")


async def test_a_role_change_moves_the_user_and_a_refused_one_says_why(db, app, tenant) -> None:
    carol = await make_user(db, "carol", "customer", "acme")
    async with api_client(app) as http:
        csrf = await _admin(http, db)
        refused = await http.post(
            f"/users/{carol.id}/role", data={"csrf": csrf, "role": "support", "tenant": "acme"}
        )
        page = await http.get(refused.headers["location"])
        assert "a support sees every tenant: leave --tenant out" in page.text
        await http.post(f"/users/{carol.id}/role", data={"csrf": csrf, "role": "support"})
        user = (await http.get(f"/api/users/{carol.id}")).json()
        assert user["role"] == "support" and user["tenant"] is None


async def test_an_admin_cannot_disable_themselves_in_the_console(db, app) -> None:
    async with api_client(app) as http:
        csrf = await _admin(http, db)
        async with db.session() as s:
            ann = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == "ann"))
        answer = await http.post(f"/users/{ann.id}/disable", data={"csrf": csrf})
        page = await http.get(answer.headers["location"])
        assert "you cannot disable your own user" in page.text
        assert (await http.get("/users")).status_code == 200


async def test_a_bad_new_user_form_is_shown_again_with_the_reason(db, app) -> None:
    async with api_client(app) as http:
        csrf = await _admin(http, db)
        answer = await http.post(
            "/users", data={"csrf": csrf, "username": "dave", "role": "customer"}
        )
        assert answer.status_code == 400
        assert "a customer user or token belongs to one tenant" in answer.text
        assert 'value="dave"' in answer.text
        without_csrf = await http.post("/users", data={"username": "eve", "role": "admin"})
        assert without_csrf.status_code == 403


async def test_a_revoked_token_opens_nothing(db, app) -> None:
    async with api_client(app) as http:
        csrf = await _admin(http, db)
        [token] = _shown_once(await _add_token(http, csrf))
        async with api_client(app, token) as bearer:
            assert (await bearer.get("/api/audit")).status_code == 200
        listed = (await http.get("/api/tokens")).json()
        [bi] = [t for t in listed if t["name"] == "bi"]
        assert token.startswith(f"ctk_{bi['prefix']}") and bi["revoked_at"] is None
        revoked = await http.post(f"/tokens/{bi['id']}/revoke", data={"csrf": csrf})
        assert revoked.status_code == 303
        async with api_client(app, token) as bearer:
            assert (await bearer.get("/api/audit")).status_code == 401


async def test_the_api_creates_a_user_once_and_refusals_answer_400(db, app, tenant) -> None:
    token = await make_token(db, "admin")
    async with api_client(app, token) as api:
        made = await api.post(
            "/api/users", json={"username": "carol", "role": "customer", "tenant": "acme"}
        )
        assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
        body = made.json()
        assert body["user"]["tenant"] == "acme" and body["totp_uri"] is None
        again = await api.post(
            "/api/users", json={"username": "carol", "role": "customer", "tenant": "acme"}
        )
        assert again.status_code == 400 and "exists already" in again.json()["detail"]
        missing = await api.get(f"/api/users/{uuid.uuid4()}")
        assert missing.status_code == 404
    async with api_client(app) as http:
        await sign_in(http, "carol", body["password"])
