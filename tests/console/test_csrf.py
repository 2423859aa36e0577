"""A signed-in browser's changes need the session's CSRF token: a post without it (as a
page on another site would send) is refused, whatever the route; with it, the change goes
through. Driven by the app's route list and by the forms the pages actually render."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import func, select

from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.db.models_outbox import OutboxEvent
from courier.console.access import CSRF_FIELD, CSRF_HEADER
from tests.support.console import api_client, make_api_token, make_user, sign_in
from tests.support.console_routes import Endpoint, Fill, endpoints
from tests.support.tenant_objects import populate

REFUSED = "this form has expired or did not come from the console"


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)


class Forms(HTMLParser):
    """The post forms of a page, each with the values a person would submit: hidden and
    pre-filled inputs as they are, the selected (or first) option, and something
    plausible in each required text box."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "").lower() == "post":
            self._form = Form(a.get("action", ""))
            self.found.append(self._form)
        if self._form is None:
            return
        if tag == "option" and self._select:
            value = a.get("value", "")
            self._form.options.setdefault(self._select, []).append(value)
            if self._select not in self._form.fields or "selected" in a:
                self._form.fields[self._select] = value
            return
        if not (name := a.get("name")):
            return
        if tag == "input" and a.get("type") not in ("checkbox", "submit"):
            self._form.fields[name] = a.get("value") or _plausible(name, a)
        elif tag == "select":
            self._select = name
        elif tag == "textarea":
            self._form.fields[name] = _plausible(name, a) if "required" in a else ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._form is not None:
            # A customer belongs to a tenant; staff to none (as the form's hint says).
            if self._form.fields.get("role") == "customer" and not self._form.fields["tenant"]:
                self._form.fields["tenant"] = self._form.options["tenant"][-1]
            elif "tenant" in self._form.fields and self._form.fields.get("role") != "customer":
                self._form.fields["tenant"] = ""
            self._form = None
        elif tag == "select":
            self._select = None


def _plausible(name: str, attrs: dict[str, str]) -> str:
    if "required" not in attrs and attrs.get("type") != "password":
        return ""
    if attrs.get("type") == "password" or "password" in name:
        return "a long enough password 42"
    if "user" in name:
        return f"csrf-{uuid.uuid4().hex[:6]}"
    return "written by the CSRF test"


@dataclass
class Admin:
    http: httpx.AsyncClient
    csrf: str
    fill: Fill


@pytest.fixture
async def admin(db, app) -> Admin:
    objects = await populate(db, app.state.storage, "acme")
    # Someone else: disabling oneself would end the test's session.
    other = await make_user(db, "otto", "support")
    token, _ = await make_api_token(db, "support", name="robot")
    await make_user(db, "ann", "admin")
    # The held import, so its page shows the approve and reject forms.
    fill = objects.fill(other, token, **{"import": (objects.held.id, objects.held.file_name)})
    async with api_client(app) as http:
        yield Admin(http, await sign_in(http, "ann"), fill)


def _posts(app) -> list[Endpoint]:
    """Every unsafe route but the way in, sign-out last (it ends the session)."""
    unsafe = [e for e in endpoints(app) if e.method != "GET" and not e.open_by_design]
    return sorted(unsafe, key=lambda e: e.path == "/signout")


async def _post(admin: Admin, endpoint: Endpoint, token: str | None) -> httpx.Response:
    url = endpoint.url(admin.fill)
    if endpoint.is_api:
        headers = {CSRF_HEADER: token} if token else {}
        return await admin.http.post(url, json={}, headers=headers)
    return await admin.http.post(url, data={CSRF_FIELD: token} if token else {"note": "x"})


async def _changes(db) -> tuple[int | None, int | None]:
    async with db.session() as s:
        return (
            await s.scalar(select(func.count()).select_from(OutboxEvent)),
            await s.scalar(select(func.count()).select_from(ConsoleAuditEntry)),
        )


async def test_every_post_without_the_token_is_refused_and_changes_nothing(db, app, admin):
    other_session = await _csrf_of_another_session(app)
    before = await _changes(db)
    let_through: list[str] = []
    for endpoint in _posts(app):
        for token in (None, other_session):
            answer = await _post(admin, endpoint, token)
            if answer.status_code != 403 or REFUSED not in answer.text:
                let_through.append(f"{endpoint} ({'another' if token else 'no'} token)")
    assert let_through == []
    # No command staged, no change recorded, still signed in.
    assert await _changes(db) == before
    assert (await admin.http.get("/imports")).status_code == 200


async def _csrf_of_another_session(app) -> str:
    await make_user(app.state.db, "eve", "admin")
    async with api_client(app) as other:
        return await sign_in(other, "eve")


async def test_every_post_with_the_token_is_let_through(app, admin) -> None:
    refused: list[str] = []
    for endpoint in _posts(app):
        answer = await _post(admin, endpoint, admin.csrf)
        if (answer.status_code == 403 and REFUSED in answer.text) or answer.status_code >= 500:
            refused.append(f"{endpoint}: {answer.status_code}")
    assert refused == []


async def test_every_form_the_pages_render_carries_the_token_and_works_with_it(app, admin):
    forms: dict[str, Form] = {}
    for endpoint in endpoints(app):
        if endpoint.method == "GET" and not endpoint.is_api and endpoint.path != "/signin":
            parser = Forms()
            parser.feed((await admin.http.get(endpoint.url(admin.fill))).text)
            forms.update((f.action, f) for f in parser.found)
    # The forms a support engineer and an admin use are all there to be checked.
    actions = {a.rsplit("/", 1)[-1] for a in forms}
    assert {"approve", "reject", "ack", "resolve", "notes", "redeliver", "signout"} <= actions
    assert {"disable", "reset-password", "role", "revoke", "users", "tokens"} <= actions
    assert [a for a, f in forms.items() if f.fields.get(CSRF_FIELD) != admin.csrf] == []

    outcomes: dict[str, int] = {}
    for action, form in sorted(forms.items(), key=lambda item: item[0] == "/signout"):
        without = {k: v for k, v in form.fields.items() if k != CSRF_FIELD}
        refused = await admin.http.post(action, data=without)
        assert refused.status_code == 403, action
        outcomes[action] = (await admin.http.post(action, data=form.fields)).status_code
    # Each form, posted as the browser posts it, did its work: it sent the person back to
    # the page, or showed what is shown once (a new password, an authenticator secret).
    shown_once = ("reset-password", "totp", "/users", "/tokens")
    expected = {a: 200 if a.endswith(shown_once) else 303 for a in outcomes}
    assert outcomes == expected
