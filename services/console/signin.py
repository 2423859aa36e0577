"""Sign-in and sign-out pages.

Every refusal reads the same, whether the name is unknown, the password wrong, the
user disabled or locked out, so the page tells an outsider nothing about accounts.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from courier.common import console_audit, console_users
from courier.common.console_users import SigninPolicy, authenticate
from courier.common.db.models_console import ConsoleSession
from courier.common.logging import get_logger
from courier.common.settings import Settings
from courier.console.access import COOKIE, CurrentViewer, audit, client_ip, start_session
from courier.console.render import page

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)

REFUSED = (
    "Sign-in failed. Check your user name, password and, if you use one, the code from "
    "your authenticator app. After repeated failures sign-in pauses for a while."
)


class AddressLimiter:
    """At most `per_minute` attempts from one address in any 60 s (per process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        attempts = self.seen[address]
        while attempts and now - attempts[0] > 60:
            attempts.popleft()
        if len(attempts) >= self.per_minute:
            return False
        attempts.append(now)
        return True


def policy(settings: Settings) -> SigninPolicy:
    return SigninPolicy(
        max_failures=settings.console_signin_max_failures,
        lockout=timedelta(minutes=settings.console_lockout_minutes),
        totp_roles=frozenset(settings.console_totp_roles),
    )


def _safe_next(target: str | None) -> str:
    """Only a path on this console: never an absolute URL taken from the query."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    # Browsers read a backslash as a slash ("/\\host" is "//host"), and a control
    # character can split the Location header.
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    return target


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, next: str | None = None) -> Response:
    return page(request, "signin.html", None, next=_safe_next(next), error=None)


@router.post("/signin", response_class=HTMLResponse)
async def signin(
    request: Request,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    code: Annotated[str, Form(max_length=12)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    app = request.app.state
    ip = client_ip(request) or "unknown"
    target = _safe_next(next)
    if not app.signin_limiter.allow(ip):
        async with app.db.transaction() as s:
            console_audit.record(
                s,
                actor=username[:100],
                action="signin.throttled",
                summary="too many sign-in attempts from one address",
                ip=ip,
            )
        log.warning("console sign-in throttled", ip=ip)
        return page(
            request,
            "signin.html",
            None,
            next=target,
            error="Too many sign-in attempts from your address. Wait a minute and try again.",
            status_code=429,
        )
    async with app.db.transaction() as s:
        user = await authenticate(s, username, password, code or None, app.signin_policy, ip=ip)
        if user is not None:
            cookie = await start_session(s, request, user)
            console_users.audit(
                s, user, "signin", "signed in", by=user.username, role=user.role, ip=ip
            )
    if user is None:
        log.info("console sign-in refused", ip=ip)
        return page(request, "signin.html", None, next=target, error=REFUSED, status_code=401)
    log.info("console sign-in", user=user.username, role=user.role)
    response = RedirectResponse(target, status_code=303)
    app.cookies.set(response, cookie, request)
    return response


@router.post("/signout")
async def signout(request: Request, viewer: CurrentViewer) -> Response:
    app = request.app.state
    id_hash = app.cookies.read(request.cookies.get(COOKIE))
    async with app.db.transaction() as s:
        if id_hash is not None and (row := await s.get(ConsoleSession, id_hash)) is not None:
            row.ended_at = datetime.now(UTC)
        audit(
            s, request, viewer, action="signout", tenant_id=viewer.tenant_id, summary="signed out"
        )
    response = RedirectResponse("/signin", status_code=303)
    app.cookies.clear(response, request)
    return response
