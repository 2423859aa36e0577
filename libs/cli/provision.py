"""Creating tenants, accounts and feeds: shared by the admin commands and `dev up`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Feed, SftpAccount, Tenant
from courier.common.passwords import hash_password
from courier.common.regions import Regions
from courier.common.settings import get_settings
from courier.common.specs import check_timezone

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ProvisionError(Exception):
    pass


async def get_tenant(db: Database, slug: str) -> Tenant:
    async with db.session() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise ProvisionError(f"no tenant {slug!r}")
    return tenant


async def ensure_tenant(
    db: Database,
    slug: str,
    name: str,
    timezone: str = "UTC",
    *,
    region: str | None = None,
    regions: Regions | None = None,
) -> Tenant:
    """The tenant `slug`, created if new. With `regions`, its region (default: the
    default region) must have a configured store: RegionNotConfigured otherwise."""
    if not _SLUG.match(slug):
        raise ProvisionError(
            f"tenant slug {slug!r}: use lower-case letters, digits and '-', at most 63"
        )
    try:
        # Every window and schedule of the tenant falls back to this zone.
        check_timezone(timezone)
    except ValueError as exc:
        raise ProvisionError(f"{exc}, e.g. Europe/London") from exc
    asked = region
    if regions is not None:
        region = regions.check(region or regions.default)
    async with db.transaction() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            # Without the regions at hand, still the configured default, not the column's.
            tenant = Tenant(
                slug=slug,
                name=name,
                timezone=timezone,
                region=region or get_settings().default_region,
            )
            session.add(tenant)
            return tenant
        if asked is None:
            return tenant
        elif region is not None and tenant.region != region:
            raise ProvisionError(
                f"tenant {slug!r} exists already, in region {tenant.region!r} "
                "(`courier tenants set-region` moves it)"
            )
    return tenant


async def set_region(
    db: Database, slug: str, region: str, regions: Regions, *, force: bool = False
) -> Tenant:
    """Place tenant `slug` in `region` (which must have a configured store).

    Files are not moved: while the tenant's current region still holds any, the
    change is refused unless `force` (the files stay behind, unread, until moved).
    """
    regions.check(region)
    tenant = await get_tenant(db, slug)
    if tenant.region == region:
        return tenant
    if not force and regions.is_configured(tenant.region):
        held = await regions.primary(tenant.region).list(f"tenants/{slug}")
        if held:
            raise ProvisionError(
                f"tenant {slug!r} has {len(held)} files in region {tenant.region!r}; "
                "they are not moved: move them first, or pass --force"
            )
    async with db.transaction() as session:
        tenant = await session.get_one(Tenant, tenant.id)
        tenant.region = region
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
