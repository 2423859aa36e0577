"""Data sovereignty: each tenant's files live only in the stores of its region.

A region (e.g. `eu-west-2`) names a primary store, an optional backup store and the
server-side encryption of both (`COURIER_REGIONS`, see `Settings.region_stores`).
`Regions` opens those stores; `RegionalStorage` is the one store every service
writes through: it reads the tenant from the key (`tenants/<slug>/…`), looks up the
tenant's region and forwards to that region's primary store. A key that names no
tenant, or a tenant whose region has no configured store, is refused before a byte
is written, and the refusal is raised as a `region_violation` alert.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from courier.common.db.engine import Database, is_sqlite, session_factory
from courier.common.db.models import Tenant
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.common.outbox import stage
from courier.common.settings import RegionStores, Settings
from courier.common.storage import (
    ObjectInfo,
    Reader,
    Storage,
    StorageError,
    Writer,
    open_storage,
)

__all__ = [
    "RegionNotConfigured",
    "RegionStores",
    "RegionViolation",
    "RegionalStorage",
    "Regions",
    "encryption_of",
    "public_url",
    "region_of_key",
    "tenant_of_key",
    "tenant_region",
]

log = get_logger(__name__)

ALERT_KIND = "region_violation"
# How long a process trusts what it read of the tenants' regions (a miss reads again at once).
REFRESH_SECONDS = 30.0


class RegionNotConfigured(Exception):
    """A region with no configured store: a tenant may not be created in it or moved to it."""


class RegionViolation(StorageError):
    """A storage call that cannot be kept inside its tenant's region; nothing was done."""


class Regions:
    """The configured regions and their stores, each store opened once."""

    def __init__(self, settings: Settings) -> None:
        self._stores = settings.region_stores()
        self.default = settings.default_region
        self._primary: dict[str, Storage] = {}
        self._backup: dict[str, Storage | None] = {}

    def names(self) -> list[str]:
        return sorted(self._stores)

    def is_configured(self, name: str) -> bool:
        return name in self._stores

    def check(self, name: str) -> str:
        """`name` if it has a configured store; else RegionNotConfigured, naming those that do."""
        if name not in self._stores:
            raise RegionNotConfigured(
                f"region {name!r} has no configured store; configured regions: "
                f"{', '.join(self.names())} (set COURIER_REGIONS to add one)"
            )
        return name

    def stores(self, name: str) -> RegionStores:
        return self._stores[self.check(name)]

    def primary(self, name: str) -> Storage:
        if name not in self._primary:
            cfg = self.stores(name)
            self._primary[name] = open_storage(
                cfg.storage_url, sse=cfg.sse, kms_key_id=cfg.kms_key_id
            )
        return self._primary[name]

    def backup(self, name: str) -> Storage | None:
        if name not in self._backup:
            cfg = self.stores(name)
            self._backup[name] = (
                open_storage(cfg.backup_url, sse=cfg.sse, kms_key_id=cfg.kms_key_id)
                if cfg.backup_url
                else None
            )
        return self._backup[name]


# ---------------------------------------------------------------- describing a region

# Query parameters of a store URL that say where it is and hold no secret.
_PUBLIC_QUERY = ("endpoint", "region")


def public_url(url: str | None) -> str | None:
    """`url` fit to print: no user or password, and no query parameter but the endpoint
    (itself without credentials) and the region."""
    if url is None:
        return None
    parsed = urlparse(url)
    query = {
        k: (public_url(v[-1]) if k == "endpoint" else v[-1])
        for k, v in parse_qs(parsed.query).items()
        if k in _PUBLIC_QUERY
    }
    netloc = parsed.netloc.rsplit("@", 1)[-1]
    return urlunparse(parsed._replace(netloc=netloc, query=urlencode(query), params=""))


def encryption_of(url: str | None, stores: RegionStores) -> str:
    """What server-side encryption the store at `url` applies, in words."""
    if url is None:
        return "none"
    if urlparse(url).scheme != "s3":
        return "none (local directory)"
    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    sse = stores.sse or query.get("sse")
    kms = stores.kms_key_id or query.get("kms_key_id")
    if not sse:
        return "none (the bucket's default)"
    return f"{sse} (key {kms})" if sse == "aws:kms" and kms else sse


# ---------------------------------------------------------------- tenants and keys


def tenant_of_key(key: str) -> str | None:
    """The tenant slug a storage key (or prefix) belongs to: `tenants/<slug>/…`."""
    parts = key.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "tenants" and parts[1] not in ("", ".", ".."):
        return parts[1]
    return None


async def tenant_region(session: AsyncSession, slug: str) -> str:
    """The region of tenant `slug`; RegionViolation when there is no such tenant."""
    region = await session.scalar(select(Tenant.region).where(Tenant.slug == slug))
    if region is None:
        raise RegionViolation(f"no tenant {slug!r}")
    return region


async def region_of_key(session: AsyncSession, key: str) -> str:
    """The region whose stores hold `key`; RegionViolation for a key of no tenant."""
    slug = tenant_of_key(key)
    if slug is None:
        raise RegionViolation(f"storage key {key!r} names no tenant")
    return await tenant_region(session, slug)


@dataclass(frozen=True)
class _Placed:
    tenant_id: uuid.UUID
    region: str


class RegionalStorage:
    """The `Storage` of a service: each call goes to the primary store of the key's region.

    Tenants' regions are read from the database, kept for `REFRESH_SECONDS`, and read
    again at once for a tenant not known (or not placeable) yet. Reading uses its own
    connections: on SQLite a write transaction of the caller (an importer writing a
    result file) must not wait on this lookup, nor this lookup on it.
    """

    def __init__(
        self, regions: Regions, db: Database, *, refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self.regions = regions
        self.db = db
        self.url = "regions:" + ",".join(regions.names())
        self.refresh_seconds = refresh_seconds
        self._placed: dict[str, _Placed] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._alerts: set[asyncio.Task[None]] = set()
        self._engine: AsyncEngine | None = None

    # ------------------------------------------------------------ routing

    def _sessions(self) -> Any:
        if not is_sqlite(self.db.url):
            return self.db.sessions
        if self._engine is None:
            # No `BEGIN IMMEDIATE` here: a read in WAL mode runs beside the writer.
            self._engine = create_async_engine(self.db.url, connect_args={"timeout": 30})
        return session_factory(self._engine)

    async def _load(self, asked_at: float) -> None:
        async with self._lock:
            if self._loaded_at >= asked_at:
                return  # another call read the table meanwhile
            started = time.monotonic()
            async with self._sessions()() as session:
                rows = (await session.execute(select(Tenant.slug, Tenant.id, Tenant.region))).all()
            self._placed = {slug: _Placed(tid, region) for slug, tid, region in rows}
            self._loaded_at = started

    async def _place(self, slug: str) -> _Placed | None:
        now = time.monotonic()
        placed = self._placed.get(slug)
        stale = now - self._loaded_at > self.refresh_seconds
        if placed is None or stale or not self.regions.is_configured(placed.region):
            await self._load(now)
            placed = self._placed.get(slug)
        return placed

    async def store_for(self, key: str, *, write: bool = False) -> Storage:
        """The primary store of `key`'s region; RegionViolation (and, for a write, an alert)
        when the key names no tenant or the tenant's region has no configured store."""
        slug = tenant_of_key(key)
        placed = await self._place(slug) if slug is not None else None
        if placed is not None and self.regions.is_configured(placed.region):
            return self.regions.primary(placed.region)
        if slug is None:
            reason = f"storage key {key!r} names no tenant"
        elif placed is None:
            reason = f"storage key {key!r}: no tenant {slug!r}"
        else:
            reason = (
                f"tenant {slug!r} is in region {placed.region!r}, which has no configured "
                f"store (configured: {', '.join(self.regions.names())})"
            )
        if write:
            self._alert(key, slug, placed, reason)
        raise RegionViolation(reason)

    def _alert(self, key: str, slug: str | None, placed: _Placed | None, reason: str) -> None:
        region = placed.region if placed else None
        log.error("write outside its region refused", tenant=slug, region=region, key=key)
        alert = AlertRaised(
            kind=ALERT_KIND,
            # Refusals of one tenant and region fold into one incident.
            cause_key=f"{ALERT_KIND}:{slug or '-'}:{region or '-'}",
            tenant_id=placed.tenant_id if placed else None,
            tenant=slug if placed else None,
            summary=f"a write was refused to keep data in its region: {reason}",
            details={"key": key, "region": region, "reason": reason, "class": "platform"},
        )
        # Staged in a transaction of its own, after the caller's (rolled back by this
        # refusal) has let go: on SQLite the caller may hold the one write lock.
        task = asyncio.create_task(self._stage_alert(alert))
        self._alerts.add(task)
        task.add_done_callback(self._alerts.discard)

    async def _stage_alert(self, alert: AlertRaised) -> None:
        try:
            async with self.db.transaction() as session:
                stage(session, alert)
        except Exception:
            log.exception("region violation alert not staged", tenant=alert.tenant)

    async def alerts_staged(self) -> None:
        """Wait until the alerts of refusals so far are in the outbox."""
        while self._alerts:
            await asyncio.wait(set(self._alerts))

    async def close(self) -> None:
        await self.alerts_staged()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    # ------------------------------------------------------------ Storage

    async def put(self, key: str, data: bytes) -> ObjectInfo:
        return await (await self.store_for(key, write=True)).put(key, data)

    async def open_write(self, key: str) -> Writer:
        return await (await self.store_for(key, write=True)).open_write(key)

    async def open_read(self, key: str) -> Reader:
        return await (await self.store_for(key)).open_read(key)

    async def get(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        store = await self.store_for(key)
        async for chunk in store.get(key, offset, length):
            yield chunk

    async def read(self, key: str) -> bytes:
        return await (await self.store_for(key)).read(key)

    async def stat(self, key: str) -> ObjectInfo:
        return await (await self.store_for(key)).stat(key)

    async def exists(self, key: str) -> bool:
        return await (await self.store_for(key)).exists(key)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        if tenant_of_key(prefix) is not None:
            return await (await self.store_for(prefix)).list(prefix)
        # Above any one tenant (`tenants/`, the root): every region's objects.
        seen: dict[str, ObjectInfo] = {}
        urls: set[str] = set()
        for name in self.regions.names():
            store = self.regions.primary(name)
            if store.url in urls:
                continue
            urls.add(store.url)
            for info in await store.list(prefix):
                seen.setdefault(info.key, info)
        return sorted(seen.values(), key=lambda o: o.key)

    async def delete(self, key: str) -> None:
        await (await self.store_for(key, write=True)).delete(key)

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        target = await self.store_for(dst, write=True)
        source = await self.store_for(src)
        if source is target:
            return await target.copy(src, dst)
        # Between tenants of different regions: the bytes go to the target's region only.
        writer = await target.open_write(dst)
        try:
            offset = 0
            async for chunk in source.get(src):
                await writer.write(chunk, offset)
                offset += len(chunk)
            return await writer.finalize()
        except BaseException:
            await writer.abort()
            raise

    async def local_path(self, key: str) -> Path | None:
        return await (await self.store_for(key)).local_path(key)

    async def keeps_times(self, key: str) -> bool:
        return await (await self.store_for(key)).keeps_times(key)

    async def set_modified(self, key: str, when: datetime) -> None:
        await (await self.store_for(key, write=True)).set_modified(key, when)

    async def sweep_temporary(self, older_than: datetime) -> int:
        """Every region's primary store, each once."""
        primaries = [self.regions.primary(name) for name in self.regions.names()]
        stores = {store.url: store for store in primaries}
        return sum([await store.sweep_temporary(older_than) for store in stores.values()])
