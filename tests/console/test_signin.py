"""Signing in to the console: sessions, refusals that reveal nothing, lockout, sign-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from courier.common.db.models_console import ConsoleAuditEntry, ConsoleSession
from courier.console.api import create_app
from tests.support.console import PASSWORD, api_client, csrf_of, make_token, make_user


@pytest.fixture
def app(db, storage, settings):
    return create_app(db, storage, settings)


async def test_pages_and_api_ask_for_sign_in(app) -> None:
    async with api_client(app) as http:
        page = await http.get("/incidents?state=open")
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=%2Fincidents%3Fstate%3Dopen"
        api = await http.get("/api/imports")
        assert api.status_code == 401
        assert api.headers["www-authenticate"] == "Bearer"


async def test_sign_in_sets_a_hardened_cookie_and_sign_out_ends_the_session(db, app) -> None:
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        answer = await http.post(
            "/signin", data={"username": "ann", "password": PASSWORD, "next": "/incidents"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/incidents"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        assert (await http.get("/api/imports")).status_code == 200
        kept = dict(http.cookies)
        # Sign-out needs the page's CSRF token; without it the form is refused.
        assert (await http.post("/signout")).status_code == 403
        csrf = csrf_of((await http.get("/imports")).text)
        out = await http.post("/signout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
    async with api_client(app) as other:
        # The cookie of an ended session opens nothing, even if someone kept a copy.
        other.cookies.update(kept)
        assert (await other.get("/api/imports")).status_code == 401


async def test_refusals_read_the_same_for_unknown_wrong_and_disabled_users(db, app) -> None:
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        answers = [
            await http.post("/signin", data={"username": u, "password": p})
            for u, p in (("ann", "wrong password!!"), ("nobody", PASSWORD))
        ]
    assert {a.status_code for a in answers} == {401}
    assert answers[0].text == answers[1].text


async def test_repeated_failures_lock_the_user_and_the_lockout_is_audited(db, settings, storage):
    app = create_app(db, storage, settings.model_copy(update={"console_signin_max_failures": 3}))
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        for _ in range(3):
            await http.post("/signin", data={"username": "ann", "password": "not the password"})
        locked = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
        assert locked.status_code == 401
    async with db.session() as s:
        actions = list(await s.scalars(select(ConsoleAuditEntry.action)))
    assert actions.count("signin.locked") == 1
    assert "signin" not in actions


async def test_totp_user_needs_the_code(db, app) -> None:
    user = await make_user(db, "ann", "admin", totp=True)
    async with api_client(app) as http:
        without = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
        assert without.status_code == 401
        code = pyotp.TOTP(user.totp_secret).now()
        answer = await http.post(
            "/signin", data={"username": "ann", "password": PASSWORD, "code": code}
        )
        assert answer.status_code == 303


async def test_api_token_reads_and_a_revoked_one_does_not(db, app) -> None:
    token = await make_token(db, "support")
    async with api_client(app, token) as http:
        assert (await http.get("/api/imports")).status_code == 200
    async with api_client(app, token[:-2] + "xx") as http:
        assert (await http.get("/api/imports")).status_code == 401


async def test_a_polled_table_after_the_session_ended_sends_the_whole_page_to_sign_in(app):
    async with api_client(app) as http:
        answer = await http.get(
            "/imports/rows",
            headers={"HX-Request": "true", "HX-Current-URL": "http://console/imports?feed=leave"},
        )
    # htmx loads the sign-in page in place of the page, instead of inside its table.
    assert answer.status_code == 401
    assert answer.headers["hx-redirect"] == "/signin?next=%2Fimports%3Ffeed%3Dleave"


async def _signed_in_client_age(db, app, *, idle: timedelta, age: timedelta) -> int:
    """Sign in, make the session look `idle` since its last request and `age` old; the
    status of the next request."""
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        await http.post("/signin", data={"username": "ann", "password": PASSWORD})
        now = datetime.now(UTC)
        async with db.transaction() as s:
            await s.execute(
                update(ConsoleSession).values(last_seen_at=now - idle, created_at=now - age)
            )
        return (await http.get("/api/imports")).status_code


async def test_a_session_idle_longer_than_the_idle_timeout_has_ended(db, app, settings) -> None:
    idle = timedelta(minutes=settings.console_session_idle_minutes + 1)
    assert await _signed_in_client_age(db, app, idle=idle, age=idle) == 401


async def test_a_busy_session_still_ends_at_the_absolute_timeout(db, app, settings) -> None:
    age = timedelta(hours=settings.console_session_max_hours, minutes=1)
    assert await _signed_in_client_age(db, app, idle=timedelta(0), age=age) == 401


async def test_a_fresh_session_is_kept(db, app) -> None:
    assert await _signed_in_client_age(db, app, idle=timedelta(0), age=timedelta(0)) == 200


async def test_the_cookie_is_secure_when_the_console_is_served_over_tls(db, storage, settings):
    tls = settings.model_copy(update={"console_base_url": "https://console.example"})
    await make_user(db, "ann", "admin")
    async with api_client(create_app(db, storage, tls)) as http:
        answer = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_a_role_that_requires_an_authenticator_refuses_a_user_without_one(
    db, storage, settings
) -> None:
    strict = settings.model_copy(update={"console_totp_roles": ["admin"]})
    app = create_app(db, storage, strict)
    await make_user(db, "ann", "admin")
    await make_user(db, "sue", "support")
    async with api_client(app) as http:
        refused = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
        allowed = await http.post("/signin", data={"username": "sue", "password": PASSWORD})
    assert (refused.status_code, allowed.status_code) == (401, 303)
    async with db.session() as s:
        reasons = [e.details.get("reason") for e in await s.scalars(select(ConsoleAuditEntry))]
    assert "the role requires an authenticator and none is enrolled" in reasons


async def test_the_openapi_document_declares_bearer_tokens(db, app) -> None:
    async with api_client(app, await make_token(db, "support")) as http:
        spec = (await http.get("/api/openapi.json")).json()
        docs = await http.get("/api/docs")
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["HTTPBearer"].items()
    # Served from the console's own assets: no CDN on a machine without internet.
    assert "/static/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/\\/evil.example",
        "/x\r\nSet-Cookie: a=b",
    ],
)
async def test_sign_in_never_sends_a_person_off_the_console(db, app, target) -> None:
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        answer = await http.post(
            "/signin", data={"username": "ann", "password": PASSWORD, "next": target}
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
