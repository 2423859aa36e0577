"""People and access pages: users and API tokens (admin), the console audit (staff).

A generated password, a TOTP provisioning URI or a new token appears once, in the
answer to the form that made it, marked not to be cached; every later page shows
only what the listings show. The changes themselves are `people`'s, shared with
the JSON API.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.console_users import AccessError
from courier.common.db.engine import Database
from courier.common.db.models_console import ROLES
from courier.console import people
from courier.console.access import AdminViewer, StaffViewer, Viewer, found_or_404
from courier.console.deps import Session
from courier.console.paging import tenant_slugs
from courier.console.render import Outcome, back, back_after, page

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=320)]
# What a page shows once: its title, the (label, secret) pairs, and where to go next.
Shown = tuple[str, list[tuple[str, str]], str]


def _problem(exc: AccessError | ValidationError) -> str:
    """A refusal in words: the handler's reason, or which field is wrong and why."""
    if isinstance(exc, AccessError):
        return str(exc)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
    )


def _once(
    request: Request, viewer: Viewer, title: str, shown: list[tuple[str, str]], then: str
) -> HTMLResponse:
    """The one page that shows a new secret; the browser is told not to keep it."""
    answer = page(request, "admin/once.html", viewer, title=title, shown=shown, back=then)
    answer.headers["Cache-Control"] = "no-store"
    return answer


async def _act(path: str, change: Awaitable[Any], notice: str) -> Response:
    """Run a change and go back to `path` with a notice, or with the refusal's reason."""
    return await back_after(path, change, notice=notice, refused=(AccessError,))


# ------------------------------------------------------------------ users and tokens

_LISTS: dict[str, Callable[[AsyncSession], Awaitable[Sequence[BaseModel]]]] = {
    "users": people.list_users,
    "tokens": people.list_tokens,
}


async def _listing(
    request: Request,
    viewer: Viewer,
    s: AsyncSession,
    what: Literal["users", "tokens"],
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The users or the tokens page: the list, and the form that adds one."""
    return page(
        request,
        f"admin/{what}.html",
        viewer,
        **{what: await _LISTS[what](s)},
        tenants=await tenant_slugs(s, viewer),
        roles=ROLES,
        notice=notice,
        error=error,
        form=form or {"role": "customer"},
        status_code=status_code,
    )


async def _create(
    request: Request,
    viewer: Viewer,
    s: AsyncSession,
    what: Literal["users", "tokens"],
    form: dict[str, Any],
    made: Awaitable[Shown],
) -> HTMLResponse:
    """Add a user or a token and show its secret once; a refused or invalid form comes
    back with the reason and what was typed (400)."""
    try:
        return _once(request, viewer, *await made)
    except (AccessError, ValidationError) as exc:
        return await _listing(
            request, viewer, s, what, error=_problem(exc), form=form, status_code=400
        )


async def _renew(
    request: Request, viewer: Viewer, user_id: uuid.UUID, made: Awaitable[Shown]
) -> Response:
    """A user's new password or authenticator, shown once; a refusal goes back to their page."""
    try:
        return _once(request, viewer, *await made)
    except AccessError as exc:
        return back(f"/users/{user_id}", error=str(exc))


@router.get("/users", response_class=HTMLResponse)
async def users(
    request: Request,
    viewer: AdminViewer,
    s: Session,
    outcome: Outcome,
) -> HTMLResponse:
    return await _listing(request, viewer, s, "users", **outcome)


async def _new_user(db: Database, viewer: Viewer, form: dict[str, Any]) -> Shown:
    new = people.NewUser.model_validate(
        {**form, "tenant": form["tenant"] or None, "email": form["email"] or None}
    )
    created = await people.add_user(db, viewer, new)
    shown = [("User name", created.user.username), ("Password", created.password)]
    if created.totp_uri:
        shown.append(("Authenticator (otpauth URI)", created.totp_uri))
    return f"User {created.user.username} created", shown, f"/users/{created.user.id}"


@router.post("/users", response_class=HTMLResponse)
async def create_user(
    request: Request,
    viewer: AdminViewer,
    s: Session,
    username: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=16)],
    tenant: Text = "",
    email: Text = "",
    display_name: Text = "",
    totp: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    form = {
        "username": username,
        "role": role,
        "tenant": tenant,
        "email": email,
        "display_name": display_name,
        "totp": totp,
    }
    made = _new_user(request.app.state.db, viewer, form)
    return await _create(request, viewer, s, "users", form, made)


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def user(
    request: Request,
    user_id: uuid.UUID,
    viewer: AdminViewer,
    s: Session,
    outcome: Outcome,
) -> HTMLResponse:
    return page(
        request,
        "admin/user.html",
        viewer,
        user=found_or_404(await people.get_user(s, user_id), "user"),
        tenants=await tenant_slugs(s, viewer),
        roles=ROLES,
        **outcome,
    )


@router.post("/users/{user_id}/disable")
async def disable_user(request: Request, user_id: uuid.UUID, viewer: AdminViewer) -> Response:
    change = people.change_enabled(request.app.state.db, viewer, user_id, False)
    return await _act(f"/users/{user_id}", change, "user disabled; their sessions ended")


@router.post("/users/{user_id}/enable")
async def enable_user(request: Request, user_id: uuid.UUID, viewer: AdminViewer) -> Response:
    change = people.change_enabled(request.app.state.db, viewer, user_id, True)
    return await _act(f"/users/{user_id}", change, "user enabled")


@router.post("/users/{user_id}/role")
async def set_role(
    request: Request,
    user_id: uuid.UUID,
    viewer: AdminViewer,
    role: Annotated[str, Form(max_length=16)],
    tenant: Text = "",
) -> Response:
    try:
        change = people.RoleChange.model_validate({"role": role, "tenant": tenant or None})
    except ValidationError as exc:
        return back(f"/users/{user_id}", error=_problem(exc))
    action = people.change_role(request.app.state.db, viewer, user_id, change)
    return await _act(f"/users/{user_id}", action, "role changed; their sessions ended")


async def _new_password(db: Database, viewer: Viewer, user_id: uuid.UUID) -> Shown:
    reset = await people.new_password(db, viewer, user_id)
    shown = [("User name", reset.user.username), ("Password", reset.password)]
    return f"New password for {reset.user.username}", shown, f"/users/{user_id}"


async def _new_totp(db: Database, viewer: Viewer, user_id: uuid.UUID) -> Shown:
    enrolled = await people.new_totp(db, viewer, user_id)
    shown = [("Authenticator (otpauth URI)", enrolled.totp_uri)]
    return f"New authenticator for {enrolled.user.username}", shown, f"/users/{user_id}"


@router.post("/users/{user_id}/reset-password", response_class=HTMLResponse)
async def reset_password(request: Request, user_id: uuid.UUID, viewer: AdminViewer) -> Response:
    made = _new_password(request.app.state.db, viewer, user_id)
    return await _renew(request, viewer, user_id, made)


@router.post("/users/{user_id}/totp", response_class=HTMLResponse)
async def enroll_totp(request: Request, user_id: uuid.UUID, viewer: AdminViewer) -> Response:
    made = _new_totp(request.app.state.db, viewer, user_id)
    return await _renew(request, viewer, user_id, made)


@router.get("/tokens", response_class=HTMLResponse)
async def tokens(
    request: Request,
    viewer: AdminViewer,
    s: Session,
    outcome: Outcome,
) -> HTMLResponse:
    return await _listing(request, viewer, s, "tokens", **outcome)


async def _new_token(db: Database, viewer: Viewer, form: dict[str, Any]) -> Shown:
    new = people.NewToken.model_validate(
        {**form, "tenant": form["tenant"] or None, "expires_days": form["expires_days"] or None}
    )
    created = await people.add_token(db, viewer, new)
    return f"Token {created.token.name} created", [("Token", created.secret)], "/tokens"


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(
    request: Request,
    viewer: AdminViewer,
    s: Session,
    name: Annotated[str, Form(max_length=100)],
    role: Annotated[str, Form(max_length=16)],
    tenant: Text = "",
    expires_days: Annotated[str, Form(max_length=6)] = "",
) -> HTMLResponse:
    form = {"name": name, "role": role, "tenant": tenant, "expires_days": expires_days}
    made = _new_token(request.app.state.db, viewer, form)
    return await _create(request, viewer, s, "tokens", form, made)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(request: Request, token_id: uuid.UUID, viewer: AdminViewer) -> Response:
    change = people.revoke(request.app.state.db, viewer, token_id)
    return await _act("/tokens", change, "token revoked")


# ------------------------------------------------------------------ audit


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(400, f"{name} is a date like 2026-01-31") from exc


@router.get("/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    viewer: StaffViewer,
    s: Session,
    actor: str = "",
    action: str = "",
    tenant: str = "",
    since: str = "",
    until: str = "",
    after: str = "",
) -> HTMLResponse:
    filters = {"actor": actor, "action": action, "tenant": tenant, "since": since, "until": until}
    where = people.AuditFilter(
        actor=actor or None,
        action=action or None,
        tenant=tenant or None,
        since=_day(since, "since"),
        until=_day(until, "until"),
    )
    found = await people.read_audit(s, where, after or None)
    kept = {k: v for k, v in filters.items() if v}
    links = {}
    if after:
        links["newer"] = f"/audit?{urlencode(kept)}"
    if found.next:
        links["older"] = f"/audit?{urlencode({**kept, 'after': found.next})}"
    return page(
        request,
        "admin/audit.html",
        viewer,
        entries=found.entries,
        filters=filters,
        tenants=await tenant_slugs(s, viewer),
        links=links,
    )
