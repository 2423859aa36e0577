"""Console users and API tokens: created, changed and checked the same way by the console
and the `courier users` / `courier tokens` commands.

Passwords are argon2id (`courier.common.passwords`); TOTP is pyotp; API tokens are
random, shown once, and kept as a SHA-256 digest (they carry 256 bits of entropy, so
a slow hash adds nothing but latency to every API call).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import console_audit
from courier.common.db.models import Tenant
from courier.common.db.models_console import ROLES, ApiToken, ConsoleUser
from courier.common.passwords import hash_password, verify_password

TOKEN_SCHEME = "ctk_"
MIN_PASSWORD = 12


class AccessError(Exception):
    """A request about users or tokens that cannot be carried out, with the reason."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user or an API token, with the role and tenant they act as."""

    name: str
    role: str
    tenant_id: uuid.UUID | None = None
    tenant_slug: str | None = None
    user_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "support")

    def sees(self, tenant_id: uuid.UUID | None) -> bool:
        return self.tenant_id is None or tenant_id == self.tenant_id


async def _tenant(session: AsyncSession, role: str, tenant: str | None) -> Tenant | None:
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    if role == "customer":
        if not tenant:
            raise AccessError("a customer user or token belongs to one tenant: give --tenant")
        found = await session.scalar(select(Tenant).where(Tenant.slug == tenant))
        if found is None:
            raise AccessError(f"no tenant {tenant!r}")
        return found
    if tenant:
        raise AccessError(f"a {role} sees every tenant: leave --tenant out")
    return None


def audit(
    session: AsyncSession,
    target: ConsoleUser | ApiToken,
    action: str,
    summary: str,
    *,
    by: str,
    **entry: Any,
) -> None:
    """The console audit line of a change to (or a sign-in of) a user or a token, by `by`,
    in the caller's transaction."""
    console_audit.record(
        session,
        actor=by,
        action=action,
        tenant_id=target.tenant_id,
        target_type="user" if isinstance(target, ConsoleUser) else "token",
        target_id=target.id,
        summary=summary,
        **entry,
    )


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccessError(f"a console password needs at least {MIN_PASSWORD} characters")


async def find_user(session: AsyncSession, username: str) -> ConsoleUser | None:
    return await session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    role: str,
    password: str,
    tenant: str | None = None,
    email: str | None = None,
    display_name: str = "",
    totp: bool = False,
    by: str,
) -> ConsoleUser:
    """A new user; with `totp`, the secret is set and must be shown to the user once."""
    found = await _tenant(session, role, tenant)
    check_password(password)
    if await find_user(session, username) is not None:
        raise AccessError(f"a user named {username!r} exists already")
    user = ConsoleUser(
        id=uuid.uuid4(),
        username=username,
        role=role,
        tenant_id=found.id if found else None,
        email=email,
        display_name=display_name or username,
        password_hash=hash_password(password),
        totp_secret=pyotp.random_base32() if totp else None,
        enabled=True,
        failed_signins=0,
    )
    session.add(user)
    summary = f"created {role} user {username}" + (f" of {tenant}" if tenant else "")
    audit(session, user, "user.create", summary, by=by)
    return user


async def _user(session: AsyncSession, username: str) -> ConsoleUser:
    user = await find_user(session, username)
    if user is None:
        raise AccessError(f"no user {username!r}")
    return user


async def set_enabled(session: AsyncSession, username: str, enabled: bool, *, by: str) -> None:
    user = await _user(session, username)
    user.enabled = enabled
    if enabled:
        user.failed_signins, user.locked_until = 0, None
    else:
        await end_sessions(session, user.id)
    verb = "enable" if enabled else "disable"
    audit(session, user, f"user.{verb}", f"{verb}d user {username}", by=by)


async def reset_password(session: AsyncSession, username: str, password: str, *, by: str) -> None:
    check_password(password)
    user = await _user(session, username)
    user.password_hash = hash_password(password)
    user.password_set_at = datetime.now(UTC)
    user.failed_signins, user.locked_until = 0, None
    await end_sessions(session, user.id)
    audit(session, user, "user.reset_password", f"reset the password of {username}", by=by)


async def set_role(
    session: AsyncSession, username: str, role: str, tenant: str | None, *, by: str
) -> None:
    found = await _tenant(session, role, tenant)
    user = await _user(session, username)
    before = user.role
    user.role, user.tenant_id = role, found.id if found else None
    await end_sessions(session, user.id)
    summary = f"{username}: {before} → {role}" + (f" of {tenant}" if tenant else "")
    audit(session, user, "user.set_role", summary, by=by)


async def enroll_totp(session: AsyncSession, username: str, *, by: str) -> str:
    """A fresh TOTP secret for the user (returned once, to show as a provisioning URI)."""
    user = await _user(session, username)
    user.totp_secret = pyotp.random_base32()
    audit(session, user, "user.enroll_totp", f"new authenticator for {username}", by=by)
    return user.totp_secret


def totp_uri(user: ConsoleUser, issuer: str = "Courier") -> str:
    assert user.totp_secret is not None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=issuer)


def totp_ok(user: ConsoleUser, code: str | None) -> bool:
    if user.totp_secret is None:
        return True
    return bool(code) and pyotp.TOTP(user.totp_secret).verify(code.strip(), valid_window=1)


async def end_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    from courier.common.db.models_console import ConsoleSession

    now = datetime.now(UTC)
    for s in await session.scalars(
        select(ConsoleSession).where(
            ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None)
        )
    ):
        s.ended_at = now


# ------------------------------------------------------------------ sign-in


@dataclass(frozen=True)
class SigninPolicy:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    totp_roles: frozenset[str] = frozenset()


async def authenticate(
    session: AsyncSession,
    username: str,
    password: str,
    code: str | None,
    policy: SigninPolicy,
    *,
    ip: str | None = None,
) -> ConsoleUser | None:
    """The user if every factor checks out, else None; failures and lockouts are audited.

    The caller answers every None the same way, so nobody learns whether a user
    exists, is disabled or is locked. An unknown name still pays for a hash.
    """
    now = datetime.now(UTC)
    user = await find_user(session, username)
    password_ok = verify_password(user.password_hash if user else None, password)
    if user is None:
        console_audit.record(
            session,
            actor=username[:100],
            action="signin.failed",
            summary="sign-in refused",
            details={"reason": "unknown user"},
            ip=ip,
        )
        return None
    reason = None
    if not user.enabled:
        reason = "disabled"
    elif user.locked_until is not None and user.locked_until > now:
        reason = "locked"
    elif not password_ok:
        reason = "wrong password"
    elif user.role in policy.totp_roles and user.totp_secret is None:
        reason = "the role requires an authenticator and none is enrolled"
    elif not totp_ok(user, code):
        reason = "wrong or missing authenticator code"
    if reason is None:
        user.failed_signins, user.locked_until = 0, None
        user.last_signin_at = now
        return user
    if reason in ("wrong password", "wrong or missing authenticator code"):
        user.failed_signins += 1
        if user.failed_signins >= policy.max_failures:
            user.locked_until = now + policy.lockout
            user.failed_signins = 0
            locked = (
                f"{policy.max_failures} failed sign-ins: locked until "
                f"{user.locked_until:%Y-%m-%d %H:%M} UTC"
            )
            audit(session, user, "signin.locked", locked, by=user.username, role=user.role, ip=ip)
    audit(
        session,
        user,
        "signin.failed",
        "sign-in refused",
        by=user.username,
        role=user.role,
        details={"reason": reason},
        ip=ip,
    )
    return None


async def principal_of(session: AsyncSession, user: ConsoleUser) -> Principal:
    slug = None
    if user.tenant_id is not None:
        slug = await session.scalar(select(Tenant.slug).where(Tenant.id == user.tenant_id))
    return Principal(
        name=user.username,
        role=user.role,
        tenant_id=user.tenant_id,
        tenant_slug=slug,
        user_id=user.id,
    )


# ------------------------------------------------------------------ API tokens


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    tenant: str | None = None,
    expires_days: int | None = None,
    by: str,
) -> tuple[ApiToken, str]:
    """The token row and the token itself, which is shown once and never stored."""
    found = await _tenant(session, role, tenant)
    secret = TOKEN_SCHEME + secrets.token_urlsafe(32)
    token = ApiToken(
        id=uuid.uuid4(),
        name=name,
        prefix=secret[len(TOKEN_SCHEME) : len(TOKEN_SCHEME) + 8],
        token_hash=token_digest(secret),
        role=role,
        tenant_id=found.id if found else None,
        created_by=by,
        expires_at=datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    audit(session, token, "token.create", f"created {role} token {name} ({token.prefix}…)", by=by)
    return token, secret


async def revoke_token(session: AsyncSession, token_id_or_prefix: str, *, by: str) -> ApiToken:
    query = select(ApiToken).where(ApiToken.revoked_at.is_(None))
    try:
        query = query.where(ApiToken.id == uuid.UUID(token_id_or_prefix))
    except ValueError:
        query = query.where(ApiToken.prefix == token_id_or_prefix)
    found = list(await session.scalars(query))
    if len(found) != 1:
        raise AccessError(f"no single active token {token_id_or_prefix!r}")
    token = found[0]
    token.revoked_at = datetime.now(UTC)
    audit(session, token, "token.revoke", f"revoked token {token.name} ({token.prefix}…)", by=by)
    return token


async def principal_for_token(session: AsyncSession, secret: str) -> Principal | None:
    if not secret.startswith(TOKEN_SCHEME):
        return None
    token = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_digest(secret))
    )
    now = datetime.now(UTC)
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    slug = None
    if token.tenant_id is not None:
        slug = await session.scalar(select(Tenant.slug).where(Tenant.id == token.tenant_id))
    return Principal(
        name=f"token:{token.name}",
        role=token.role,
        tenant_id=token.tenant_id,
        tenant_slug=slug,
        token_id=token.id,
    )
