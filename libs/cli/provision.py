"""Creating tenants, accounts and feeds: shared by the admin commands and `dev up`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Feed, SftpAccount, Tenant
from courier.common.passwords import hash_password

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ProvisionError(Exception):
    pass


async def get_tenant(db: Database, slug: str) -> Tenant:
    async with db.session() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise ProvisionError(f"no tenant {slug!r}")
    return tenant


async def ensure_tenant(db: Database, slug: str, name: str, timezone: str = "UTC") -> Tenant:
    if not _SLUG.match(slug):
        raise ProvisionError(
            f"tenant slug {slug!r}: use lower-case letters, digits and '-', at most 63"
        )
    async with db.transaction() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            tenant = Tenant(slug=slug, name=name, timezone=timezone)
            session.add(tenant)
    return tenant


async def create_account(
    db: Database, tenant: Tenant, username: str, password: str, **fields: Any
) -> SftpAccount:
    """`fields` are further `SftpAccount` columns (auth_policy, allowed_cidrs, …)."""
    async with db.transaction() as session:
        if await session.scalar(select(SftpAccount).where(SftpAccount.username == username)):
            raise ProvisionError(f"account {username!r} exists already")
        account = SftpAccount(
            tenant_id=tenant.id,
            username=username,
            password_hash=hash_password(password),
            password_set_at=datetime.now(UTC),
            **fields,
        )
        session.add(account)
    return account


async def account_exists(db: Database, username: str) -> bool:
    async with db.session() as session:
        return (
            await session.scalar(select(SftpAccount.id).where(SftpAccount.username == username))
        ) is not None


async def upsert_feed(
    db: Database, tenant: Tenant, name: str, kind: str, pattern: str, spec: dict[str, Any]
) -> Feed:
    async with db.transaction() as session:
        feed = await session.scalar(
            select(Feed).where(Feed.tenant_id == tenant.id, Feed.name == name)
        )
        if feed is None:
            feed = Feed(tenant_id=tenant.id, name=name, kind=kind, pattern=pattern, spec=spec)
            session.add(feed)
        else:
            feed.kind, feed.pattern, feed.spec = kind, pattern, spec
    return feed
