"""Account administration: what `courier accounts …` does, with the tenant's password policy.

Passwords pass through here in the clear only to be checked and hashed; they are
returned (when generated) for the caller to show once, and never logged.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncssh
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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


def _key_row(account_id: uuid.UUID, parsed: tuple[str, str, str, str | None]) -> AccountKey:
    algorithm, fingerprint, line, comment = parsed
    return AccountKey(
        account_id=account_id,
        algorithm=algorithm,
        fingerprint=fingerprint,
        public_key=line,
        comment=comment,
    )


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


async def _apply_password(
    session: AsyncSession, account: SftpAccount, password: str | None
) -> str | None:
    """Check `password` (or generate one) against the tenant's policy and store it."""
    policy = await policy_for(session, account.tenant_id)
    generated = None
    if password is None:
        password = generated = generate_password(max(24, policy.min_length))
    problems = strength_problems(password, Strength(policy.min_length, policy.min_classes))
    if problems:
        raise AdminError("password too weak: needs " + " and ".join(problems))
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
        if matches_any(password, earlier[: policy.history]):
            raise AdminError(f"password was used before (last {policy.history} are refused)")
    if account.password_hash:
        session.add(PasswordHistory(account_id=account.id, password_hash=account.password_hash))
    now = _now()
    account.password_hash = hash_password(password)
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
        session.add_all(_key_row(account.id, parsed) for parsed in parsed_keys)
    return account, generated


async def set_password(db: Database, username: str, password: str | None = None) -> str | None:
    """Set (or, with None, generate) a new password; returns the generated one."""
    async with db.transaction() as session:
        account = await get_account(session, username)
        return await _apply_password(session, account, password)


async def add_key(db: Database, username: str, text: str) -> str:
    parsed = parse_key(text)
    fingerprint = parsed[1]
    async with db.transaction() as session:
        account = await get_account(session, username)
        exists = await session.scalar(
            select(AccountKey.id).where(
                AccountKey.account_id == account.id, AccountKey.fingerprint == fingerprint
            )
        )
        if exists is None:
            session.add(_key_row(account.id, parsed))
    return fingerprint


async def remove_key(db: Database, username: str, fingerprint: str) -> bool:
    async with db.transaction() as session:
        account = await get_account(session, username)
        key = await session.scalar(
            select(AccountKey).where(
                AccountKey.account_id == account.id, AccountKey.fingerprint == fingerprint
            )
        )
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
