"""Console users, API tokens and the console audit: what admins change and staff read.

The queries and actions here are shared by the JSON API below, the pages
(`pages_admin`) and the `courier users` / `courier tokens` listings, so every way in
shows the same columns. No model here has a field for a password hash, a TOTP secret
or a token digest: a secret leaves the server once, in the answer that created it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import console_users
from courier.common.console_users import AccessError
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_console import ApiToken, ConsoleAuditEntry, ConsoleUser
from courier.common.logging import get_logger
from courier.common.passwords import generate_password
from courier.console.access import AdminViewer, StaffViewer, Viewer, found_or_404
from courier.console.deps import Session

log = get_logger(__name__)

Role = Literal["admin", "support", "customer"]
AUDIT_PAGE = 50
# Answers that carry a one-time secret must not be kept by a browser or proxy.
NO_STORE = {"Cache-Control": "no-store"}


class UserOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    email: str | None
    role: str
    tenant: str | None
    enabled: bool
    totp: bool = Field(description="Whether the user signs in with an authenticator code.")
    created_at: datetime
    password_set_at: datetime
    last_signin_at: datetime | None
    locked_until: datetime | None


class TokenOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters after `ctk_`, to tell tokens apart.")
    role: str
    tenant: str | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class AuditEntryOut(BaseModel):
    id: uuid.UUID
    at: datetime
    actor: str
    role: str | None
    tenant: str | None
    action: str
    target_type: str | None
    target_id: str | None
    summary: str
    details: dict[str, Any]
    ip: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next: str | None = Field(description="Pass as `after` for the older page; null at the end.")


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@+-]+$")
    role: Role
    tenant: str | None = Field(default=None, description="Slug; customers only.")
    email: str | None = Field(default=None, max_length=320)
    display_name: str = Field(default="", max_length=200)
    totp: bool = Field(default=False, description="Enroll an authenticator app now.")


class UserCreated(BaseModel):
    user: UserOut
    password: str = Field(description="Generated; shown in this answer only.")
    totp_uri: str | None = Field(description="otpauth:// URI for the authenticator; once.")


class PasswordReset(BaseModel):
    user: UserOut
    password: str = Field(description="Generated; shown in this answer only.")


class TotpEnrolled(BaseModel):
    user: UserOut
    totp_uri: str = Field(description="otpauth:// URI for the authenticator; once.")


class RoleChange(BaseModel):
    role: Role
    tenant: str | None = Field(default=None, description="Slug; customers only.")


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    tenant: str | None = Field(default=None, description="Slug; customer tokens only.")
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str = Field(description="The bearer token; shown in this answer only.")


# ------------------------------------------------------------------ reading


def _user_out(user: ConsoleUser, tenant: str | None) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        role=user.role,
        tenant=tenant,
        enabled=user.enabled,
        totp=user.totp_secret is not None,
        created_at=user.created_at,
        password_set_at=user.password_set_at,
        last_signin_at=user.last_signin_at,
        locked_until=user.locked_until,
    )


def _token_out(token: ApiToken, tenant: str | None) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        role=token.role,
        tenant=tenant,
        created_by=token.created_by,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )


async def list_users(s: AsyncSession) -> list[UserOut]:
    rows = await s.execute(
        select(ConsoleUser, Tenant.slug)
        .outerjoin(Tenant, Tenant.id == ConsoleUser.tenant_id)
        .order_by(ConsoleUser.username)
    )
    return [_user_out(user, slug) for user, slug in rows]


async def get_user(s: AsyncSession, user_id: uuid.UUID) -> UserOut | None:
    row = (
        await s.execute(
            select(ConsoleUser, Tenant.slug)
            .outerjoin(Tenant, Tenant.id == ConsoleUser.tenant_id)
            .where(ConsoleUser.id == user_id)
        )
    ).first()
    return _user_out(*row) if row else None


async def list_tokens(s: AsyncSession) -> list[TokenOut]:
    rows = await s.execute(
        select(ApiToken, Tenant.slug)
        .outerjoin(Tenant, Tenant.id == ApiToken.tenant_id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())
    )
    return [_token_out(token, slug) for token, slug in rows]


@dataclass(frozen=True)
class AuditFilter:
    """What the audit is narrowed to; `action` matches a prefix (`user` finds `user.create`)."""

    actor: str | None = None
    action: str | None = None
    tenant: str | None = None
    since: date | None = None
    until: date | None = None


def _cursor(entry: AuditEntryOut) -> str:
    return f"{entry.at.isoformat()}~{entry.id}"


def _parse_cursor(value: str) -> tuple[datetime, uuid.UUID]:
    at, _, entry_id = value.partition("~")
    try:
        return datetime.fromisoformat(at), uuid.UUID(entry_id)
    except ValueError as exc:
        raise HTTPException(400, "this page link is damaged: start from the newest") from exc


async def read_audit(
    s: AsyncSession, where: AuditFilter, after: str | None = None, limit: int = AUDIT_PAGE
) -> AuditPage:
    """Newest first, a page at a time; keyset on (at, id), so page 1000 costs what page 1 does."""
    query = select(ConsoleAuditEntry, Tenant.slug).outerjoin(
        Tenant, Tenant.id == ConsoleAuditEntry.tenant_id
    )
    if where.actor:
        query = query.where(ConsoleAuditEntry.actor == where.actor)
    if where.action:
        query = query.where(ConsoleAuditEntry.action.startswith(where.action, autoescape=True))
    if where.tenant:
        query = query.where(Tenant.slug == where.tenant)
    if where.since:
        query = query.where(ConsoleAuditEntry.at >= datetime.combine(where.since, time(), UTC))
    if where.until:
        end = datetime.combine(where.until + timedelta(days=1), time(), UTC)
        query = query.where(ConsoleAuditEntry.at < end)
    if after:
        at, entry_id = _parse_cursor(after)
        query = query.where(
            or_(
                ConsoleAuditEntry.at < at,
                and_(ConsoleAuditEntry.at == at, ConsoleAuditEntry.id < entry_id),
            )
        )
    rows = await s.execute(
        query.order_by(ConsoleAuditEntry.at.desc(), ConsoleAuditEntry.id.desc()).limit(limit + 1)
    )
    entries = [
        AuditEntryOut(
            id=e.id,
            at=e.at,
            actor=e.actor,
            role=e.role,
            tenant=slug,
            action=e.action,
            target_type=e.target_type,
            target_id=e.target_id,
            summary=e.summary,
            details=e.details or {},
            ip=e.ip,
        )
        for e, slug in rows
    ]
    more = len(entries) > limit
    entries = entries[:limit]
    return AuditPage(entries=entries, next=_cursor(entries[-1]) if more else None)


# ------------------------------------------------------------------ changing
# Each runs the `courier.common.console_users` handler in one transaction, which
# writes the audit line with it; the viewer's name is the actor.


async def _username(s: AsyncSession, user_id: uuid.UUID) -> str:
    name = await s.scalar(select(ConsoleUser.username).where(ConsoleUser.id == user_id))
    return found_or_404(name, "user")


def _not_yourself(viewer: Viewer, user_id: uuid.UUID, what: str) -> None:
    """An admin cannot lock themselves out from the console (another admin or the CLI can)."""
    if viewer.principal.user_id == user_id:
        raise AccessError(f"you cannot {what} your own user: ask another admin")


async def _reread(db: Database, user_id: uuid.UUID) -> UserOut:
    async with db.session() as s:
        found = await get_user(s, user_id)
    assert found is not None
    return found


async def add_user(db: Database, viewer: Viewer, new: NewUser) -> UserCreated:
    password = generate_password()
    async with db.transaction() as s:
        user = await console_users.create_user(
            s,
            username=new.username,
            role=new.role,
            password=password,
            tenant=new.tenant or None,
            email=new.email or None,
            display_name=new.display_name,
            totp=new.totp,
            by=viewer.name,
        )
        uri = console_users.totp_uri(user) if user.totp_secret else None
    log.info("console user created", user=new.username, role=new.role, by=viewer.name)
    return UserCreated(user=await _reread(db, user.id), password=password, totp_uri=uri)


async def change_enabled(
    db: Database, viewer: Viewer, user_id: uuid.UUID, enabled: bool
) -> UserOut:
    if not enabled:
        _not_yourself(viewer, user_id, "disable")
    async with db.transaction() as s:
        await console_users.set_enabled(s, await _username(s, user_id), enabled, by=viewer.name)
    return await _reread(db, user_id)


async def new_password(db: Database, viewer: Viewer, user_id: uuid.UUID) -> PasswordReset:
    password = generate_password()
    async with db.transaction() as s:
        await console_users.reset_password(s, await _username(s, user_id), password, by=viewer.name)
    return PasswordReset(user=await _reread(db, user_id), password=password)


async def change_role(
    db: Database, viewer: Viewer, user_id: uuid.UUID, change: RoleChange
) -> UserOut:
    _not_yourself(viewer, user_id, "change the role of")
    async with db.transaction() as s:
        await console_users.set_role(
            s,
            await _username(s, user_id),
            change.role,
            change.tenant or None,
            by=viewer.name,
        )
    return await _reread(db, user_id)


async def new_totp(db: Database, viewer: Viewer, user_id: uuid.UUID) -> TotpEnrolled:
    async with db.transaction() as s:
        username = await _username(s, user_id)
        await console_users.enroll_totp(s, username, by=viewer.name)
        user = await console_users.find_user(s, username)
        assert user is not None
        uri = console_users.totp_uri(user)
    return TotpEnrolled(user=await _reread(db, user_id), totp_uri=uri)


async def add_token(db: Database, viewer: Viewer, new: NewToken) -> TokenCreated:
    async with db.transaction() as s:
        token, secret = await console_users.create_token(
            s,
            name=new.name,
            role=new.role,
            tenant=new.tenant or None,
            expires_days=new.expires_days,
            by=viewer.name,
        )
        await s.flush()  # for the defaults (created_at) it shows
        out = _token_out(token, new.tenant or None)
    log.info("console token created", name=new.name, prefix=token.prefix, by=viewer.name)
    return TokenCreated(token=out, secret=secret)


async def revoke(db: Database, viewer: Viewer, token_id: uuid.UUID) -> TokenOut:
    async with db.transaction() as s:
        found_or_404(await s.get(ApiToken, token_id), "token")
        token = await console_users.revoke_token(s, str(token_id), by=viewer.name)
        slug = await s.scalar(select(Tenant.slug).where(Tenant.id == token.tenant_id))
        return _token_out(token, slug)


# ------------------------------------------------------------------ JSON API


class _RefusalsAre400(APIRoute):
    """A refused change (unknown tenant, name taken, …) answers 400 with the reason."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except AccessError as exc:
                raise HTTPException(400, str(exc)) from exc

        return route


router = APIRouter(prefix="/api", tags=["people"], route_class=_RefusalsAre400)


def _db(request: Request) -> Database:
    return request.app.state.db


def _once(model: BaseModel, status_code: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=NO_STORE)


@router.get("/users", response_model=list[UserOut])
async def users(s: Session, viewer: AdminViewer) -> list[UserOut]:
    return await list_users(s)


@router.get("/users/{user_id}", response_model=UserOut)
async def user(user_id: uuid.UUID, s: Session, viewer: AdminViewer) -> UserOut:
    return found_or_404(await get_user(s, user_id), "user")


@router.post("/users", response_model=UserCreated, status_code=201)
async def create_user(new: NewUser, request: Request, viewer: AdminViewer) -> JSONResponse:
    return _once(await add_user(_db(request), viewer, new), 201)


@router.post("/users/{user_id}/disable", response_model=UserOut)
async def disable_user(user_id: uuid.UUID, request: Request, viewer: AdminViewer) -> UserOut:
    return await change_enabled(_db(request), viewer, user_id, False)


@router.post("/users/{user_id}/enable", response_model=UserOut)
async def enable_user(user_id: uuid.UUID, request: Request, viewer: AdminViewer) -> UserOut:
    return await change_enabled(_db(request), viewer, user_id, True)


@router.post("/users/{user_id}/reset-password", response_model=PasswordReset)
async def reset_password(user_id: uuid.UUID, request: Request, viewer: AdminViewer) -> JSONResponse:
    return _once(await new_password(_db(request), viewer, user_id))


@router.post("/users/{user_id}/role", response_model=UserOut)
async def set_role(
    user_id: uuid.UUID, change: RoleChange, request: Request, viewer: AdminViewer
) -> UserOut:
    return await change_role(_db(request), viewer, user_id, change)


@router.post("/users/{user_id}/totp", response_model=TotpEnrolled)
async def enroll_totp(user_id: uuid.UUID, request: Request, viewer: AdminViewer) -> JSONResponse:
    return _once(await new_totp(_db(request), viewer, user_id))


@router.get("/tokens", response_model=list[TokenOut])
async def tokens(s: Session, viewer: AdminViewer) -> list[TokenOut]:
    return await list_tokens(s)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
async def create_token(new: NewToken, request: Request, viewer: AdminViewer) -> JSONResponse:
    return _once(await add_token(_db(request), viewer, new), 201)


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut)
async def revoke_token(token_id: uuid.UUID, request: Request, viewer: AdminViewer) -> TokenOut:
    return await revoke(_db(request), viewer, token_id)


@router.get("/audit", response_model=AuditPage)
async def audit(
    s: Session,
    viewer: StaffViewer,
    actor: str | None = None,
    action: str | None = None,
    tenant: str | None = None,
    since: date | None = None,
    until: date | None = None,
    after: Annotated[str | None, Query(description="`next` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = AUDIT_PAGE,
) -> AuditPage:
    where = AuditFilter(actor=actor, action=action, tenant=tenant, since=since, until=until)
    return await read_audit(s, where, after, limit)
