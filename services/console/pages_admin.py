"""People and access pages: users and API tokens (admin), the console audit (staff).

A generated password, a TOTP provisioning URI or a new token appears once, in the
answer to the form that made it, marked not to be cached; every later page shows
only what the listings show. The changes themselves are `people`'s, shared with
the JSON API.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.console_users import AccessError
from courier.common.db.models_console import ROLES
from courier.console import people
from courier.console.access import AdminViewer, StaffViewer, Viewer, not_found
from courier.console.deps import Session
from courier.console.render import page

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form(max_length=320)]


def _problem(exc: AccessError | ValidationError) -> str:
    """A refusal in words: the handler's reason, or which field is wrong and why."""
    if isinstance(exc, AccessError):
        return str(exc)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
    )


def _back(path: str, *, notice: str | None = None, error: str | None = None) -> Response:
    query = urlencode({k: v for k, v in (("notice", notice), ("error", error)) if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def _once(
    request: Request, viewer: Viewer, title: str, shown: list[tuple[str, str]], back: str
) -> HTMLResponse:
    """The one page that shows a new secret; the browser is told not to keep it."""
    answer = page(request, "admin/once.html", viewer, title=title, shown=shown, back=back)
    answer.headers["Cache-Control"] = "no-store"
    return answer


async def _act(path: str, change: Awaitable[Any], notice: str) -> Response:
    """Run a change and go back to `path` with a notice, or with the refusal's reason."""
    try:
        await change
    except AccessError as exc:
        return _back(path, error=str(exc))
    return _back(path, notice=notice)


# ------------------------------------------------------------------ users


async def _users_page(
    request: Request,
    viewer: Viewer,
    s: AsyncSession,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "admin/users.html",
        viewer,
        users=await people.list_users(s),
        tenants=await people.tenant_slugs(s),
        roles=ROLES,
        notice=notice,
        error=error,
        form=form or {"role": "customer"},
        status_code=status_code,
    )


@router.get("/users", response_class=HTMLResponse)
async def users(
    request: Request,
    viewer: AdminViewer,
    s: Session,
    notice: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    return await _users_page(request, viewer, s, notice=notice, error=error)


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
    try:
        new = people.NewUser.model_validate(
            {**form, "tenant": tenant or None, "email": email or None}
        )
        created = await people.add_user(request.app.state.db, viewer, new)
    except (AccessError, ValidationError) as exc:
        return await _users_page(
            request, viewer, s, error=_problem(exc), form=form, status_code=400
        )
    shown = [("User name", created.user.username), ("Password", created.password)]
    if created.totp_uri:
        shown.append(("Authenticator (otpauth URI)", created.totp_uri))
    return _once(
        request, viewer, f"User {created.user.username} created", shown, f"/users/{created.user.id}"
    )


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def user(
    request: Request,
    user_id: uuid.UUID,
    viewer: AdminViewer,
    s: Session,
    notice: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    found = await people.get_user(s, user_id)
    if found is None:
        raise not_found("user")
    return page(
        request,
        "admin/user.html",
        viewer,
        user=found,
        tenants=await people.tenant_slugs(s),
        roles=ROLES,
        notice=notice,
        error=error,
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
        return _back(f"/users/{user_id}", error=_problem(exc))
    action = people.change_role(request.app.state.db, viewer, user_id, change)
    return await _act(f"/users/{user_id}", action, "role changed; their sessions ended")


@router.post("/users/{user_id}/reset-password", response_class=HTMLResponse)
async def reset_password(request: Request, user_id: uuid.UUID, viewer: AdminViewer) -> Response:
    try:
        reset = await people.new_password(request.app.state.db, viewer, user_id)
    except AccessError as exc:
        return _back(f"/users/{user_id}", error=str(exc))
    return _once(
        request,
        viewer,
        f"New password for {reset.user.username}",
        [("User name", reset.user.username), ("Password", reset.password)],
        f"/users/{user_id}",
    )


@router.post("/users/{user_id}/totp", response_class=HTMLResponse)
async def enroll_totp(request: Request, user_id: uuid.UUID, viewer: AdminViewer) -> Response:
    try:
        enrolled = await people.new_totp(request.app.state.db, viewer, user_id)
    except AccessError as exc:
        return _back(f"/users/{user_id}", error=str(exc))
    return _once(
        request,
        viewer,
        f"New authenticator for {enrolled.user.username}",
        [("Authenticator (otpauth URI)", enrolled.totp_uri)],
        f"/users/{user_id}",
    )


# ------------------------------------------------------------------ tokens


async def _tokens_page(
    request: Request,
    viewer: Viewer,
    s: AsyncSession,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "admin/tokens.html",
        viewer,
        tokens=await people.list_tokens(s),
        tenants=await people.tenant_slugs(s),
        roles=ROLES,
        notice=notice,
        error=error,
        form=form or {"role": "customer"},
        status_code=status_code,
    )


@router.get("/tokens", response_class=HTMLResponse)
async def tokens(
    request: Request,
    viewer: AdminViewer,
    s: Session,
    notice: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    return await _tokens_page(request, viewer, s, notice=notice, error=error)


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
    try:
        new = people.NewToken.model_validate(
            {**form, "tenant": tenant or None, "expires_days": expires_days or None}
        )
        created = await people.add_token(request.app.state.db, viewer, new)
    except (AccessError, ValidationError) as exc:
        return await _tokens_page(
            request, viewer, s, error=_problem(exc), form=form, status_code=400
        )
    return _once(
        request,
        viewer,
        f"Token {created.token.name} created",
        [("Token", created.secret)],
        "/tokens",
    )


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
    return page(
        request,
        "admin/audit.html",
        viewer,
        entries=found.entries,
        filters=filters,
        tenants=await people.tenant_slugs(s),
        newest=f"/audit?{urlencode(kept)}" if after else None,
        older=f"/audit?{urlencode({**kept, 'after': found.next})}" if found.next else None,
    )
