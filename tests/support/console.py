"""The console in tests: users and tokens made through the same handlers as the CLI,
HTTP clients signed in as them, and the CSRF token a page carries."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from courier.common import console_users
from courier.common.db.engine import Database
from courier.common.db.models_console import ApiToken, ConsoleUser

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def make_user(
    db: Database,
    username: str,
    role: str = "admin",
    tenant: str | None = None,
    *,
    password: str = PASSWORD,
    totp: bool = False,
) -> ConsoleUser:
    async with db.transaction() as s:
        return await console_users.create_user(
            s, username=username, role=role, tenant=tenant, password=password, totp=totp, by="tests"
        )


async def make_api_token(
    db: Database, role: str = "admin", tenant: str | None = None, name: str = "tests"
) -> tuple[ApiToken, str]:
    """The token's row and the token itself (the bearer secret)."""
    async with db.transaction() as s:
        return await console_users.create_token(s, name=name, role=role, tenant=tenant, by="tests")


async def make_token(
    db: Database, role: str = "admin", tenant: str | None = None, name: str = "tests"
) -> str:
    _, secret = await make_api_token(db, role, tenant, name)
    return secret


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


@contextlib.asynccontextmanager
async def api_client(
    app_or_url: object, token: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app (in process) or a running console's URL, with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(app_or_url, str):
        client = httpx.AsyncClient(base_url=app_or_url, headers=headers, timeout=30)
    else:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_or_url),  # type: ignore[arg-type]
            base_url="http://console",
            headers=headers,
            timeout=30,
        )
    async with client:
        yield client


async def sign_in(
    http: httpx.AsyncClient, username: str, password: str = PASSWORD, code: str = ""
) -> str:
    """Sign `http` in (its cookie jar keeps the session); returns the CSRF token of its pages."""
    answer = await http.post(
        "/signin", data={"username": username, "password": password, "code": code, "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    page = await http.get("/imports")
    return csrf_of(page.text)
