"""What operators ask of the backups: how far behind they are, whether they are whole,
and the bytes back.

Restore reads the backup into a local spool while hashing it, and writes nothing
unless the sha256 is the one the ledger recorded: the bytes put back are the bytes
that were backed up, or none at all.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.backup import ledger
from courier.backup.transfer import BackupFailed, read_backup, write_spool
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_backup import BackupEntry
from courier.common.regions import Regions
from courier.common.storage import CHUNK, check_key, sha256_of


class RestoreError(Exception):
    """A restore (or a status/verify question) that cannot be answered as asked."""


@dataclass(frozen=True)
class Waiting:
    key: str
    region: str
    status: str
    attempts: int
    since: datetime
    last_error: str | None


@dataclass
class Status:
    backlog: list[ledger.Backlog]
    confirmed: int
    oldest: Waiting | None
    failures: list[Waiting] = field(default_factory=list)


async def _tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise RestoreError(f"no tenant {slug!r}")
    return tenant


def _waiting(e: BackupEntry) -> Waiting:
    return Waiting(e.key, e.region, e.status, e.attempts, e.created_at, e.last_error)


async def status(db: Database, tenant: str | None = None, failures: int = 20) -> Status:
    async with db.session() as session:
        tenant_id = (await _tenant(session, tenant)).id if tenant else None
        scope = [] if tenant_id is None else [BackupEntry.tenant_id == tenant_id]
        backlog = await ledger.backlog(session, tenant_id)
        confirmed = len(
            (
                await session.scalars(
                    select(BackupEntry.id).where(BackupEntry.status == "confirmed", *scope)
                )
            ).all()
        )
        oldest = await session.scalar(
            select(BackupEntry)
            .where(BackupEntry.status.in_(ledger.UNCONFIRMED), *scope)
            .order_by(BackupEntry.created_at)
            .limit(1)
        )
        failed = (
            await session.scalars(
                select(BackupEntry)
                .where(BackupEntry.status == "failed", *scope)
                .order_by(BackupEntry.updated_at.desc())
                .limit(failures)
            )
        ).all()
    return Status(
        backlog, confirmed, _waiting(oldest) if oldest else None, [_waiting(e) for e in failed]
    )


@dataclass(frozen=True)
class Mismatch:
    key: str
    version_id: str | None
    problem: str


def _latest_per_key(rows: list[BackupEntry]) -> list[BackupEntry]:
    latest: dict[str, BackupEntry] = {}
    for row in rows:
        held = latest.get(row.key)
        if held is None or (row.confirmed_at or row.created_at) > (
            held.confirmed_at or held.created_at
        ):
            latest[row.key] = row
    return list(latest.values())


async def verify(
    db: Database, regions: Regions, tenant: str | None = None
) -> tuple[int, list[Mismatch]]:
    """Read back every confirmed backup and compare its sha256 with the ledger's.

    On a versioned bucket each recorded version is read; a store without versions
    holds only the latest content of a key, so only that is checked.
    """
    async with db.session() as session:
        query = select(BackupEntry).where(BackupEntry.status == "confirmed")
        if tenant:
            query = query.where(BackupEntry.tenant_id == (await _tenant(session, tenant)).id)
        rows = list((await session.scalars(query.order_by(BackupEntry.key))).all())
    versioned = [r for r in rows if r.backup_version_id]
    checks = versioned + _latest_per_key([r for r in rows if not r.backup_version_id])
    problems: list[Mismatch] = []
    for row in checks:
        target = regions.backup(row.region) if regions.is_configured(row.region) else None
        if target is None:
            problems.append(Mismatch(row.key, None, f"region {row.region!r} has no backup store"))
            continue
        with tempfile.TemporaryFile() as sink:
            try:
                sha256, size = await read_backup(target, row.key, row.backup_version_id, sink)
            except BackupFailed as exc:
                problems.append(Mismatch(row.key, row.backup_version_id, str(exc)))
                continue
        if sha256 != row.sha256 or size != row.size:
            problems.append(
                Mismatch(
                    row.key,
                    row.backup_version_id,
                    f"backup holds sha256 {sha256} ({size} bytes), "
                    f"ledger recorded {row.sha256} ({row.size} bytes)",
                )
            )
    return len(checks), problems


@dataclass(frozen=True)
class Restored:
    key: str
    to: str
    size: int
    sha256: str
    version_id: str | None


def tenant_key(tenant: str, path: str) -> str:
    """`inbound/x.csv`, `/outbound/results/x.csv` or a whole key, as the tenant's key."""
    relpath = path.strip("/")
    prefix = f"tenants/{tenant}"
    key = (
        relpath if relpath == prefix or relpath.startswith(prefix + "/") else f"{prefix}/{relpath}"
    )
    return check_key(key)


async def _pick(
    session: AsyncSession, tenant_id: uuid.UUID, key: str, version: str | None
) -> BackupEntry:
    query = select(BackupEntry).where(
        BackupEntry.tenant_id == tenant_id,
        BackupEntry.key == key,
        BackupEntry.status == "confirmed",
    )
    if version:
        query = query.where(BackupEntry.backup_version_id == version)
    rows = list((await session.scalars(query)).all())
    if not rows:
        which = f" at version {version}" if version else ""
        raise RestoreError(f"no confirmed backup of {key}{which}")
    return _latest_per_key(rows)[0]


async def restore(
    db: Database,
    regions: Regions,
    tenant: str,
    path: str,
    *,
    to: Path | None = None,
    version: str | None = None,
) -> Restored:
    """Put one backed-up object back: at its key in the primary store, or in file `to`."""
    async with db.session() as session:
        t = await _tenant(session, tenant)
        row = await _pick(session, t.id, tenant_key(tenant, path), version)
    return await _restore_row(regions, row, to)


async def restore_since(
    db: Database,
    regions: Regions,
    tenant: str,
    since: datetime,
    *,
    path: str | None = None,
    to: Path | None = None,
) -> list[Restored]:
    """Every key of the tenant (under `path`, if given) backed up at or after `since`,
    each at its latest backed-up content; `to` is a directory for them (None: the
    primary store)."""
    async with db.session() as session:
        t = await _tenant(session, tenant)
        query = select(BackupEntry).where(
            BackupEntry.tenant_id == t.id,
            BackupEntry.status == "confirmed",
            BackupEntry.created_at >= since,
        )
        if path:
            prefix = tenant_key(tenant, path)
            query = query.where(
                BackupEntry.key.startswith(prefix + "/") | (BackupEntry.key == prefix)
            )
        rows = _latest_per_key(list((await session.scalars(query)).all()))
    out: list[Restored] = []
    for row in sorted(rows, key=lambda r: r.key):
        dest = None if to is None else to / row.key.removeprefix(f"tenants/{tenant}/")
        out.append(await _restore_row(regions, row, dest))
    return out


async def _restore_row(regions: Regions, row: BackupEntry, to: Path | None) -> Restored:
    target = regions.backup(row.region) if regions.is_configured(row.region) else None
    if target is None:
        raise RestoreError(f"region {row.region!r} has no backup store")
    with tempfile.TemporaryFile() as spool:
        try:
            sha256, size = await read_backup(target, row.key, row.backup_version_id, spool)
        except BackupFailed as exc:
            raise RestoreError(str(exc)) from exc
        spool.flush()  # read back below by position, past the file object's buffer
        if sha256 != row.sha256:
            raise RestoreError(
                f"{row.key}: the backup holds sha256 {sha256}, the ledger recorded {row.sha256}; "
                "nothing was restored"
            )
        if to is None:
            await _to_primary(regions, row.region, row.key, spool, size, sha256)
            where = row.key
        else:
            _to_file(spool, to)
            where = str(to)
    return Restored(row.key, where, size, sha256, row.backup_version_id)


async def _to_primary(
    regions: Regions, region: str, key: str, spool: IO[bytes], size: int, sha256: str
) -> None:
    primary = regions.primary(region)
    await write_spool(primary, key, spool)
    written, written_size = await sha256_of(primary, key)
    if written != sha256 or written_size != size:
        raise RestoreError(f"{key}: the primary store holds sha256 {written} after the restore")


def _to_file(spool: IO[bytes], dest: Path) -> None:
    """Written beside `dest` and renamed over it: `dest` is whole or untouched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            offset = 0
            while chunk := os.pread(spool.fileno(), CHUNK, offset):
                out.write(chunk)
                offset += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
