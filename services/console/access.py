"""Who is asking, and what they may see: sessions, API tokens, roles, tenant scope, CSRF.

Every route but sign-in, health and metrics depends on `viewer` (or `staff`/`admin`),
so a request without a session cookie or a bearer token never reaches a handler.
A customer is limited to one tenant in the queries themselves (`scope`), and another
tenant's object answers 404 exactly as a missing one does.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, Signer
from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import console_audit
from courier.common.console_users import Principal, principal_for_token, principal_of
from courier.common.db.models_console import ConsoleSession, ConsoleUser
from courier.common.settings import Settings
from courier.console.security import tls_on

COOKIE = "courier_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A session's last-seen time is written at most this often (reads stay reads).
TOUCH_EVERY = timedelta(seconds=60)
T = TypeVar("T")


class SignInRequired(Exception):
    """No valid session or token: pages redirect to sign-in, the API answers 401."""


@dataclass(frozen=True)
class Viewer:
    """The principal of a request, and the session it came with (None for a token)."""

    principal: Principal
    session_csrf: str | None = None

    # Shortcuts that templates and handlers read.
    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def role(self) -> str:
        return self.principal.role

    @property
    def tenant_id(self) -> Any:
        return self.principal.tenant_id

    @property
    def is_staff(self) -> bool:
        return self.principal.is_staff


class Cookies:
    """Signs and reads the session cookie; the database keeps only the id's digest."""

    def __init__(self, settings: Settings) -> None:
        key = settings.console_secret_key
        self.secret = key.get_secret_value() if key else secrets.token_urlsafe(32)
        self.signer = Signer(self.secret, salt="courier-console-session")
        self.secure = tls_on(settings)
        self.idle = timedelta(minutes=settings.console_session_idle_minutes)
        self.absolute = timedelta(hours=settings.console_session_max_hours)

    def issue(self) -> tuple[str, str]:
        """(cookie value, id digest) of a new session."""
        raw = secrets.token_urlsafe(32)
        return self.signer.sign(raw).decode(), digest(raw)

    def read(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return digest(self.signer.unsign(value).decode())
        except BadSignature:
            return None

    def secure_for(self, request: Request) -> bool:
        """Secure behind TLS: the public address is https, or this request came over it."""
        return self.secure or request.url.scheme == "https"

    def set(self, response: Response, value: str, request: Request) -> None:
        response.set_cookie(
            COOKIE,
            value,
            httponly=True,
            samesite="lax",
            secure=self.secure_for(request),
            path="/",
            max_age=int(self.absolute.total_seconds()),
        )

    def clear(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure_for(request),
        )


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit(session: AsyncSession, request: Request, viewer: Viewer, **entry: Any) -> None:
    """The console audit line of what `viewer` did in `request` (`action`, `summary`, the
    target, …), in the caller's transaction."""
    console_audit.record(
        session, actor=viewer.name, role=viewer.role, ip=client_ip(request), **entry
    )


async def start_session(db_session: AsyncSession, request: Request, user: ConsoleUser) -> str:
    """A new session row for `user`; returns the cookie value to set."""
    cookies: Cookies = request.app.state.cookies
    value, id_hash = cookies.issue()
    db_session.add(
        ConsoleSession(
            id_hash=id_hash,
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            ip=client_ip(request),
            user_agent=(request.headers.get("user-agent") or "")[:300],
        )
    )
    return value


async def _from_cookie(request: Request) -> Viewer | None:
    cookies: Cookies = request.app.state.cookies
    id_hash = cookies.read(request.cookies.get(COOKIE))
    if id_hash is None:
        return None
    now = datetime.now(UTC)
    async with request.app.state.db.transaction() as s:
        row = await s.get(ConsoleSession, id_hash)
        if row is None or row.ended_at is not None:
            return None
        if now - row.last_seen_at > cookies.idle or now - row.created_at > cookies.absolute:
            row.ended_at = now
            return None
        user = await s.get(ConsoleUser, row.user_id)
        if user is None or not user.enabled:
            row.ended_at = now
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            row.last_seen_at = now
        return Viewer(await principal_of(s, user), row.csrf_token)


async def _from_token(request: Request) -> Viewer | None:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    async with request.app.state.db.transaction() as s:
        principal = await principal_for_token(s, secret.strip())
    return Viewer(principal) if principal else None


async def _csrf_ok(request: Request, viewer: Viewer) -> bool:
    if request.method in SAFE_METHODS or viewer.session_csrf is None:
        return True
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)  # type: ignore[assignment]
    return isinstance(sent, str) and hmac.compare_digest(sent, viewer.session_csrf)


# Declared so the OpenAPI document names both ways in; read by hand below.
_bearer = HTTPBearer(auto_error=False, description="An API token from `courier tokens create`")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="A signed-in browser")


async def current_viewer(
    request: Request,
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    _session: Annotated[str | None, Depends(_cookie)] = None,
) -> Viewer:
    """The request's principal; an unsafe request from a browser must carry its CSRF token."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    viewer = await _from_token(request)
    if viewer is None and "authorization" not in request.headers:
        viewer = await _from_cookie(request)
    if viewer is None:
        raise SignInRequired()
    if not await _csrf_ok(request, viewer):
        raise HTTPException(403, "this form has expired or did not come from the console: reload")
    request.state.viewer = viewer
    return viewer


def _role_in(*roles: str) -> Any:
    async def check(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Viewer:
        if viewer.role not in roles:
            raise HTTPException(403, f"this needs the {' or '.join(roles)} role")
        return viewer

    return check


# Any signed-in person or token; support and admin; admin only.
CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
StaffViewer = Annotated[Viewer, Depends(_role_in("admin", "support"))]
AdminViewer = Annotated[Viewer, Depends(_role_in("admin"))]


def scope(viewer: Viewer, tenant_id_column: Any) -> ColumnElement[bool]:
    """The WHERE clause that keeps a customer to their tenant (staff: no limit)."""
    if viewer.tenant_id is None:
        return true()
    return tenant_id_column == viewer.tenant_id


def scope_slug(viewer: Viewer, tenant_slug_column: Any) -> ColumnElement[bool]:
    """As `scope`, for tables that name the tenant by slug (incidents)."""
    if viewer.tenant_id is None:
        return true()
    return tenant_slug_column == viewer.principal.tenant_slug


def not_found(what: str) -> HTTPException:
    """The answer for a missing object and for another tenant's alike."""
    return HTTPException(404, f"no {what} here")


def found_or_404(found: T | None, what: str) -> T:
    """`found`, or (None: missing, or not the viewer's) the 404 `not_found` answers."""
    if found is None:
        raise not_found(what)
    return found


@contextlib.contextmanager
def refused_as_http(what: str, *refusals: type[Exception]) -> Iterator[None]:
    """A command the owning service's rules refuse, as HTTP: 404 when the `what` is
    missing (the refusal's `missing`), else 409 with the reason."""
    try:
        yield
    except refusals as exc:
        if getattr(exc, "missing", False):
            raise not_found(what) from exc
        raise HTTPException(409, str(exc)) from exc


def on_sign_in_required(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api") or "authorization" in request.headers:
        return JSONResponse(
            {"detail": "sign in, or send an API token as 'Authorization: Bearer …'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signin = f"/signin?next={quote(target, safe='')}"
    if request.headers.get("hx-request") == "true":
        # An htmx swap (a polled table) would put the sign-in form inside the page:
        # ask htmx to load the sign-in page instead, returning to the page it was on.
        current = request.headers.get("hx-current-url", "")
        parts = urlsplit(current)
        back = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Response(
            status_code=401, headers={"HX-Redirect": f"/signin?next={quote(back, safe='')}"}
        )
    return RedirectResponse(signin, status_code=303)


__all__ = [
    "AdminViewer",
    "CurrentViewer",
    "StaffViewer",
    "Viewer",
    "audit",
    "current_viewer",
    "found_or_404",
    "not_found",
    "refused_as_http",
    "scope",
    "scope_slug",
]
