"""Account administration: what `courier accounts …` does, with the tenant's password policy.

Passwords pass through here in the clear only to be checked and hashed; they are
returned (when generated) for the caller to show once, and never logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import asyncssh
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import console_audit
from courier.common.calendars import BusinessCalendar
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount, Tenant
from courier.common.db.models_gateway import AccountKey, PasswordHistory, PasswordPolicy
from courier.common.passwords import (
    Strength,
    generate_password,
    hash_password,
    matches_any,
    strength_problems,
)
from courier.gateway.accounts import POLICIES
from courier.gateway.algorithms import too_wide

# ed25519, ECDSA, and RSA of at least 3072 bits; nothing DSA or short RSA.
KEY_ALGORITHMS = {
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
}
MIN_RSA_BITS = 3072


class AdminError(Exception):
    """A refusal to show the operator as is."""


class PasswordRefused(AdminError):
    """A new password the tenant's policy does not take (also shown to a partner's client)."""


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ policy


async def policy_for(session: AsyncSession, tenant_id: uuid.UUID) -> PasswordPolicy:
    """The tenant's policy row, or an unsaved one holding the defaults."""
    row = await session.scalar(select(PasswordPolicy).where(PasswordPolicy.tenant_id == tenant_id))
    if row is not None:
        return row
    defaults = {
        c.key: c.default.arg  # type: ignore[union-attr]
        for c in PasswordPolicy.__table__.columns
        if c.default is not None and not callable(c.default.arg)  # type: ignore[union-attr]
    }
    return PasswordPolicy(tenant_id=tenant_id, **defaults)


async def set_policy(db: Database, tenant: Tenant, **changes: int | None) -> PasswordPolicy:
    async with db.transaction() as session:
        policy = await policy_for(session, tenant.id)
        for name, value in changes.items():
            if value is not None:
                if value < 0:
                    raise AdminError(f"{name.replace('_', '-')} cannot be negative")
                setattr(policy, name, value)
        if not 1 <= policy.min_classes <= 4:
            raise AdminError("min-classes is between 1 and 4")
        session.add(policy)
    return policy


# ------------------------------------------------------------------ parsing


def parse_key(text: str) -> tuple[str, str, str, str | None]:
    """(algorithm, SHA256 fingerprint, OpenSSH line, comment) of an acceptable public key."""
    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise AdminError(f"not an OpenSSH public key: {exc}") from exc
    algorithm = key.get_algorithm()
    if algorithm not in KEY_ALGORITHMS:
        raise AdminError(f"{algorithm} keys are not accepted (use ed25519, ECDSA or RSA ≥ 3072)")
    if algorithm == "ssh-rsa":
        bits = key.pyca_key.key_size  # type: ignore[attr-defined]
        if bits < MIN_RSA_BITS:
            raise AdminError(f"RSA keys need at least {MIN_RSA_BITS} bits (this one has {bits})")
    comment = key.get_comment()
    line = key.export_public_key().decode().strip()
    return algorithm, key.get_fingerprint("sha256"), line, comment


def _key_row(
    account_id: uuid.UUID, parsed: tuple[str, str, str, str | None], expires_at: datetime | None
) -> AccountKey:
    algorithm, fingerprint, line, comment = parsed
    return AccountKey(
        account_id=account_id,
        algorithm=algorithm,
        fingerprint=fingerprint,
        public_key=line,
        comment=comment,
        expires_at=expires_at,
    )


# `expires=NEVER`: the key does not expire, whatever the tenant's key policy says.
NEVER = "never"


def key_expiry(
    tenant: Tenant,
    policy: PasswordPolicy,
    expires: date | datetime | Literal["never"] | None,
    now: datetime,
) -> datetime | None:
    """When a key added `now` stops working.

    A date is valid through its last day in the tenant's time zone (what a partner
    reads "expires 2027-06-30" as); none given: the tenant's `key_max_age_days`
    (0 = the key does not expire); `NEVER`: no expiry.
    """
    if expires == NEVER:
        return None
    if isinstance(expires, datetime):
        when: datetime | None = expires
    elif isinstance(expires, date):
        calendar = BusinessCalendar.of(tenant)
        when = calendar.at(expires + timedelta(days=1), time(0)).astimezone(UTC)
    elif policy.key_max_age_days:
        return now + timedelta(days=policy.key_max_age_days)
    else:
        return None
    if when <= now:
        raise AdminError(f"{expires} is in the past: a key must expire later")
    return when


def parse_cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as exc:
        raise AdminError(f"{text!r} is not an IPv4/IPv6 address or CIDR range") from exc


# ------------------------------------------------------------------ accounts


async def get_account(session: AsyncSession, username: str) -> SftpAccount:
    account = await session.scalar(select(SftpAccount).where(SftpAccount.username == username))
    if account is None:
        raise AdminError(f"no account {username!r}")
    return account


def _checked_hash(password: str, strength: Strength, earlier: list[str], history: int) -> str:
    """The new password's hash, once it meets the strength and no-reuse rules.

    argon2 makes this CPU-bound for a second or more: callers run it in a thread.
    """
    problems = strength_problems(password, strength)
    if problems:
        raise PasswordRefused("password too weak: needs " + " and ".join(problems))
    if history > 0 and matches_any(password, earlier[:history]):
        raise PasswordRefused(f"password was used before (last {history} are refused)")
    return hash_password(password)


async def _apply_password(
    session: AsyncSession, account: SftpAccount, password: str | None, now: datetime | None = None
) -> str | None:
    """Check `password` (or generate one) against the tenant's policy and store it."""
    policy = await policy_for(session, account.tenant_id)
    generated = None
    if password is None:
        password = generated = generate_password(max(24, policy.min_length))
    earlier: list[str] = []
    if policy.history > 0:
        earlier = list(
            await session.scalars(
                select(PasswordHistory.password_hash)
                .where(PasswordHistory.account_id == account.id)
                .order_by(PasswordHistory.id.desc())
                .limit(policy.history)
            )
        )
        if account.password_hash:
            earlier.insert(0, account.password_hash)
    strength = Strength(policy.min_length, policy.min_classes)
    new_hash = await asyncio.to_thread(_checked_hash, password, strength, earlier, policy.history)
    if account.password_hash:
        session.add(PasswordHistory(account_id=account.id, password_hash=account.password_hash))
    now = now or _now()
    account.password_hash = new_hash
    account.password_set_at = now
    account.password_expires_at = (
        now + timedelta(days=policy.max_age_days) if policy.max_age_days else None
    )
    return generated


async def create_account(
    db: Database,
    tenant: Tenant,
    username: str,
    *,
    password: str | None = None,
    auth_policy: str = "password+key",
    keys: Sequence[str] = (),
    allow: Sequence[str] = (),
    can_upload: bool = True,
    can_read: bool = True,
    can_delete: bool = True,
    quota_bytes: int | None = None,
) -> tuple[SftpAccount, str | None]:
    """Create an account; returns it and the generated password (None if one was given)."""
    if auth_policy not in POLICIES:
        raise AdminError(f"auth policy is one of {', '.join(POLICIES)}")
    parsed_keys = [parse_key(k) for k in keys]
    cidrs = [parse_cidr(c) for c in allow]
    async with db.transaction() as session:
        if await session.scalar(select(SftpAccount.id).where(SftpAccount.username == username)):
            raise AdminError(f"account {username!r} exists already")
        account = SftpAccount(
            tenant_id=tenant.id,
            username=username,
            auth_policy=auth_policy,
            allowed_cidrs=sorted(set(cidrs)),
            can_upload=can_upload,
            can_read=can_read,
            can_delete=can_delete,
            quota_bytes=quota_bytes,
        )
        session.add(account)
        await session.flush()
        generated = (
            await _apply_password(session, account, password) if auth_policy != "key" else None
        )
        policy = await policy_for(session, tenant.id)
        expires_at = key_expiry(tenant, policy, None, _now())
        session.add_all(_key_row(account.id, parsed, expires_at) for parsed in parsed_keys)
    return account, generated


async def set_password(
    db: Database, username: str, password: str | None = None, *, now: datetime | None = None
) -> str | None:
    """Set (or, with None, generate) a new password; returns the generated one.

    The operator's `set-password` and a partner's change over SSH both come here, so
    one policy answers both.
    """
    async with db.transaction() as session:
        account = await get_account(session, username)
        return await _apply_password(session, account, password, now)


async def _key_of(
    session: AsyncSession, account_id: uuid.UUID, fingerprint: str
) -> AccountKey | None:
    return await session.scalar(
        select(AccountKey).where(
            AccountKey.account_id == account_id, AccountKey.fingerprint == fingerprint
        )
    )


async def add_key(
    db: Database,
    username: str,
    text: str,
    *,
    expires: date | datetime | Literal["never"] | None = None,
    now: datetime | None = None,
) -> AccountKey:
    """Authorize a key until `expires` (see `key_expiry`). Adding a key the account has
    already changes nothing but its expiry, when one is given."""
    parsed = parse_key(text)
    now = now or _now()
    async with db.transaction() as session:
        account = await get_account(session, username)
        policy = await policy_for(session, account.tenant_id)
        key = await _key_of(session, account.id, parsed[1])
        if key is None:
            key = _key_row(account.id, parsed, key_expiry(account.tenant, policy, expires, now))
            session.add(key)
        elif expires is not None:
            key.expires_at = key_expiry(account.tenant, policy, expires, now)
            key.reminded_days = None  # a new expiry is reminded afresh
    return key


@dataclass(frozen=True)
class Retired:
    """A key a rotation set to expire: when it would have, and when it now does."""

    fingerprint: str
    was: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class Rotation:
    added: AccountKey
    retired: list[Retired]


async def rotate_key(
    db: Database,
    username: str,
    text: str,
    *,
    overlap_days: int = 14,
    expires: date | datetime | None = None,
    actor: str,
    now: datetime | None = None,
) -> Rotation:
    """Add the new key and let every other key of the account expire after the overlap
    (never later than it would anyway), so the partner can switch without a gap."""
    if overlap_days < 0:
        raise AdminError("overlap-days cannot be negative")
    parsed = parse_key(text)
    now = now or _now()
    async with db.transaction() as session:
        account = await get_account(session, username)
        old_keys = list(
            await session.scalars(select(AccountKey).where(AccountKey.account_id == account.id))
        )
        if any(k.fingerprint == parsed[1] for k in old_keys):
            raise AdminError(f"{username} has key {parsed[1]} already: rotate to a new key")
        policy = await policy_for(session, account.tenant_id)
        added = _key_row(account.id, parsed, key_expiry(account.tenant, policy, expires, now))
        session.add(added)
        cutoff = now + timedelta(days=overlap_days)
        retired = []
        for key in sorted(old_keys, key=lambda k: k.created_at):
            if key.expires_at is not None and key.expires_at <= cutoff:
                continue  # ends within the overlap already
            retired.append(Retired(key.fingerprint, key.expires_at, cutoff))
            key.expires_at = cutoff
        console_audit.record(
            session,
            actor=actor,
            action="sftp_key.rotate",
            tenant_id=account.tenant_id,
            target_type="sftp_account",
            target_id=account.id,
            summary=f"{username}: key {added.fingerprint} added, "
            f"{len(retired)} older key(s) expire {cutoff:%Y-%m-%d %H:%M} UTC",
            details={
                "added": added.fingerprint,
                "added_expires_at": added.expires_at.isoformat() if added.expires_at else None,
                "retired": [
                    {
                        "fingerprint": r.fingerprint,
                        "was": r.was.isoformat() if r.was else None,
                        "expires_at": r.expires_at.isoformat(),
                    }
                    for r in retired
                ],
            },
        )
    return Rotation(added, retired)


async def remove_key(db: Database, username: str, fingerprint: str) -> bool:
    async with db.transaction() as session:
        account = await get_account(session, username)
        key = await _key_of(session, account.id, fingerprint)
        if key is None:
            return False
        await session.delete(key)
    return True


async def keys_of(db: Database, username: str) -> list[AccountKey]:
    async with db.session() as session:
        account = await get_account(session, username)
        return list(
            await session.scalars(
                select(AccountKey)
                .where(AccountKey.account_id == account.id)
                .order_by(AccountKey.created_at)
            )
        )


async def change_allowlist(db: Database, username: str, cidr: str, *, allow: bool) -> list[str]:
    network = parse_cidr(cidr)
    async with db.transaction() as session:
        account = await get_account(session, username)
        current = set(account.allowed_cidrs or [])
        if allow:
            current.add(network)
        else:
            current.discard(network)
        account.allowed_cidrs = sorted(current)
        return account.allowed_cidrs


@dataclass(frozen=True)
class LegacyChoice:
    """An account's legacy-algorithm setting, and the ranges it does not reach."""

    username: str
    on: bool
    changed: bool
    offered_to: list[str]
    too_wide: list[str]


async def set_legacy_algorithms(
    db: Database, username: str, on: bool, *, actor: str
) -> LegacyChoice:
    """Offer (or stop offering) the legacy SSH algorithms to this account's addresses.

    Never global: only the account's allowlisted ranges get them, and of those only
    ranges narrow enough to be the partner's own. A change is recorded in the
    console audit (`sftp_account.legacy_algorithms`) with who made it.
    """
    async with db.transaction() as session:
        account = await get_account(session, username)
        cidrs = list(account.allowed_cidrs or [])
        wide = too_wide(cidrs)
        offered = [c for c in cidrs if c not in wide] if on else []
        changed = account.legacy_algorithms != on
        if changed:
            account.legacy_algorithms = on
            console_audit.record(
                session,
                actor=actor,
                action="sftp_account.legacy_algorithms",
                tenant_id=account.tenant_id,
                target_type="sftp_account",
                target_id=account.id,
                summary=f"{username}: legacy SSH algorithms turned {'on' if on else 'off'}",
                details={"legacy_algorithms": on, "offered_to": offered, "too_wide": wide},
            )
    return LegacyChoice(username, on, changed, offered, wide if on else [])


async def update(db: Database, username: str, **changes: object) -> SftpAccount:
    """Set plain fields (enabled, permissions, quota, auth policy)."""
    if "auth_policy" in changes and changes["auth_policy"] not in POLICIES:
        raise AdminError(f"auth policy is one of {', '.join(POLICIES)}")
    async with db.transaction() as session:
        account = await get_account(session, username)
        for name, value in changes.items():
            setattr(account, name, value)
    return account


async def list_accounts(db: Database, tenant: str | None = None) -> list[SftpAccount]:
    async with db.session() as session:
        query = select(SftpAccount).join(Tenant).order_by(Tenant.slug, SftpAccount.username)
        if tenant:
            query = query.where(Tenant.slug == tenant)
        return list(await session.scalars(query))
