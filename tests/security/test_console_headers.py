"""The console's HTTP surface: every answer (page, JSON, file, refusal, error) carries the
security headers; pages run no script the policy does not name; HSTS and Secure cookies
come with TLS (tests/security/test_console_in_browser.py has Chromium enforce the policy)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from courier.console.api import create_app
from tests.support.console import PASSWORD, api_client, make_api_token, make_user
from tests.support.console_routes import Fill, any_value, endpoints
from tests.support.tenant_objects import TenantObjects, populate

HSTS = "strict-transport-security"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)


def directives(answer: httpx.Response) -> dict[str, list[str]]:
    policy = answer.headers.get("content-security-policy", "")
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found


def unprotected(answer: httpx.Response) -> list[str]:
    """What is missing from the headers every console answer must carry."""
    csp = directives(answer)
    missing = [
        f"{name}: {answer.headers.get(name)!r}"
        for name, value in {
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
        }.items()
        if answer.headers.get(name) != value
    ]
    if csp.get("frame-ancestors") != ["'none'"] or csp.get("default-src") != ["'none'"]:
        missing.append(f"content-security-policy: {csp}")
    unsafe = [s for sources in csp.values() for s in sources if s.startswith("'unsafe-")]
    return missing + [f"content-security-policy allows {s}" for s in unsafe]


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def filler(objects: TenantObjects, user: Any, token: Any) -> Fill:
    known = objects.fill(user, token)

    def fill(name: str, annotation: Any) -> str:
        try:
            return known(name, annotation)
        except LookupError:
            return any_value(name, annotation)

    return fill


@pytest.fixture
async def walked(db, storage, app: FastAPI) -> list[tuple[str, httpx.Response]]:
    """Every GET route of the console answered for an admin's token, and a stranger."""
    objects = await populate(db, storage, "acme")
    user = await make_user(db, "ann", "admin")
    token_row, token = await make_api_token(db, "admin")
    fill = filler(objects, user, token_row)
    answers: list[tuple[str, httpx.Response]] = []
    async with api_client(app, token) as admin, api_client(app) as stranger:
        for endpoint in endpoints(app):
            if endpoint.method != "GET":
                continue
            url = endpoint.url(fill)
            answers.append((f"admin {url}", await admin.get(url)))
            answers.append((f"stranger {url}", await stranger.get(url)))
    return answers


async def test_every_answer_carries_the_security_headers(
    walked: list[tuple[str, httpx.Response]],
) -> None:
    statuses = {answer.status_code for _, answer in walked}
    assert {200, 303, 401} <= statuses  # pages, files and refusals were all seen
    assert [f"{what}: {gap}" for what, a in walked for gap in unprotected(a)] == []


async def test_no_page_runs_a_script_its_policy_does_not_name(
    walked: list[tuple[str, httpx.Response]],
) -> None:
    pages = [(w, a) for w, a in walked if a.headers.get("content-type", "").startswith("text/html")]
    assert len(pages) > 10
    for what, answer in pages:
        allowed = directives(answer)["script-src"]
        for script in INLINE_SCRIPT.findall(answer.text):
            assert sha256_source(script) in allowed, f"{what}: inline script not in the policy"
        assert not EVENT_HANDLER.search(answer.text), f"{what}: an on… handler attribute"


async def test_refusals_files_and_errors_carry_them_too(db, app: FastAPI) -> None:
    await make_user(db, "ann", "admin")

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        signin = await http.get("/signin")
        refused = await http.post("/signin", data={"username": "ann", "password": "wrong"})
        await http.post("/signin", data={"username": "ann", "password": PASSWORD})
        missing_page = await http.get("/imports/nothing", headers={"accept": "text/html"})
        missing_api = await http.get("/api/imports/00000000-0000-0000-0000-000000000000")
        asset = await http.get("/static/console.js")
        crashed = await http.get("/boom")
    assert (signin.status_code, refused.status_code, crashed.status_code) == (200, 401, 500)
    assert missing_page.status_code in (404, 422) and missing_api.status_code in (404, 422)
    assert asset.headers["content-type"].startswith("text/javascript")
    for answer in (signin, refused, missing_page, missing_api, asset, crashed):
        assert unprotected(answer) == [], answer.request.url
        assert HSTS not in answer.headers  # plain HTTP: a dev stack on 127.0.0.1


async def test_hsts_and_secure_cookies_come_with_tls(db, storage, settings) -> None:
    await make_user(db, "ann", "admin")
    tls = settings.model_copy(update={"console_base_url": "https://console.example"})
    behind_proxy = create_app(db, storage, tls)
    # The proxy that ends TLS speaks plain HTTP to the console: the public address decides.
    async with api_client(behind_proxy) as http:
        stranger = await http.get("/imports")
    # As the browser sees it: https (which is also what lets the Secure cookie go back).
    transport = httpx.ASGITransport(app=behind_proxy)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://console") as http:
        signed_in = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
        page = await http.get("/imports")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        signed_out = await http.post("/signout", data={"csrf": csrf.group(1)})
    for answer in (stranger, signed_in, page, signed_out):
        assert answer.headers[HSTS].startswith("max-age=31536000"), answer.request.url
    for answer in (signed_in, signed_out):  # set, and cleared, with the same flags
        cookie = answer.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


async def test_a_request_over_https_is_treated_as_tls_whatever_the_base_url(
    db, app: FastAPI
) -> None:
    await make_user(db, "ann", "admin")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://console") as http:
        signed_in = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
    assert HSTS in signed_in.headers
    assert "secure" in signed_in.headers["set-cookie"].lower()


async def test_without_tls_the_cookie_is_not_secure_so_a_local_console_works(db, app) -> None:
    await make_user(db, "ann", "admin")
    async with api_client(app) as http:
        signed_in = await http.post("/signin", data={"username": "ann", "password": PASSWORD})
    assert "secure" not in signed_in.headers["set-cookie"].lower()
    assert HSTS not in signed_in.headers
