"""Pulling files from one source: list, pick stable new files, claim, stream into storage.

Each remote file version (name, size, mtime) is claimed by inserting its ledger row
first; the unique constraint makes a second poller (or a restarted one) skip it.
A claim left by a poller that died mid-fetch expires after `CLAIM_TTL`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncssh
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from courier.common.areas import area_key, is_temporary_name
from courier.common.db.engine import Database
from courier.common.db.models_sources import Source, SourceFile
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.common.outbox import stage
from courier.common.received import add_received, keep_copy
from courier.common.remote import connect
from courier.common.storage import Storage
from courier.poller.metrics import (
    POLL_BYTES,
    POLL_ERRORS,
    POLL_FILES,
    POLLS,
    UNFETCHED_AGE,
)
from courier.poller.spec import SourceSpec

log = get_logger(__name__)

CLAIM_TTL = timedelta(minutes=30)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: int


@dataclass
class Observations:
    """What each listing showed, to tell a file still being written from a finished one."""

    seen: dict[tuple[uuid.UUID, str], tuple[int, int]] = field(default_factory=dict)

    def stable(self, source_id: uuid.UUID, f: RemoteFile) -> bool:
        key = (source_id, f.name)
        before = self.seen.get(key)
        self.seen[key] = (f.size, f.mtime)
        return before == (f.size, f.mtime)


@dataclass
class PollResult:
    listed: int = 0
    fetched: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


async def list_remote(sftp: asyncssh.SFTPClient, spec: SourceSpec) -> list[RemoteFile]:
    out = []
    for entry in await sftp.readdir(spec.directory):
        name = entry.filename if isinstance(entry.filename, str) else entry.filename.decode()
        attrs = entry.attrs
        if name in (".", "..") or attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
            continue
        if attrs.permissions is not None and (attrs.permissions & 0o170000) == 0o040000:
            continue
        if is_temporary_name(name) or not fnmatch.fnmatchcase(name, spec.pattern):
            continue
        out.append(RemoteFile(name, attrs.size or 0, int(attrs.mtime or 0)))
    return sorted(out, key=lambda f: (f.mtime, f.name))


async def _already_handled(db: Database, source: Source, f: RemoteFile, now: datetime) -> bool:
    async with db.session() as session:
        row = await session.scalar(
            select(SourceFile).where(
                SourceFile.source_id == source.id,
                SourceFile.name == f.name,
                SourceFile.size == f.size,
                SourceFile.mtime == f.mtime,
            )
        )
    if row is None:
        return False
    return row.status == "fetched" or now - row.claimed_at < CLAIM_TTL


async def claim(db: Database, source: Source, f: RemoteFile, owner: str, now: datetime) -> bool:
    """Insert the ledger row; or take over a claim that expired. False: someone else has it."""
    try:
        async with db.transaction() as session:
            session.add(
                SourceFile(
                    source_id=source.id,
                    name=f.name,
                    size=f.size,
                    mtime=f.mtime,
                    status="claimed",
                    claimed_by=owner,
                    claimed_at=now,
                )
            )
        return True
    except IntegrityError:
        pass
    async with db.transaction() as session:
        result = await session.execute(
            update(SourceFile)
            .where(
                SourceFile.source_id == source.id,
                SourceFile.name == f.name,
                SourceFile.size == f.size,
                SourceFile.mtime == f.mtime,
                SourceFile.status != "fetched",
                SourceFile.claimed_at < now - CLAIM_TTL,
            )
            .values(claimed_by=owner, claimed_at=now, status="claimed")
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def _fetch_one(
    db: Database,
    storage: Storage,
    sftp: asyncssh.SFTPClient,
    source: Source,
    spec: SourceSpec,
    f: RemoteFile,
    now: datetime,
) -> None:
    remote_path = posixpath.join(spec.directory, f.name)
    key = area_key(source.tenant.slug, "inbound", f.name)
    writer = await storage.open_write(key)
    digest = hashlib.sha256()
    try:
        async with sftp.open(remote_path, "rb") as remote:
            while chunk := await remote.read(1024 * 1024):
                digest.update(chunk)
                await writer.write(chunk)
        if writer.size != f.size:
            raise OSError(f"{f.name}: read {writer.size} bytes, listing said {f.size}")
        await writer.finalize()
    except BaseException:
        await writer.abort()
        raise
    POLL_BYTES.labels(source=spec.name).inc(f.size)
    row = await keep_copy(
        storage, source.tenant, f.name, key, source="poll", sha256=digest.hexdigest()
    )
    # The fetched mark commits with the ledger row and its event: a crash between the
    # two can neither fetch the file twice nor leave it unannounced.
    async with db.transaction() as session:
        add_received(session, row, source.tenant)
        await session.execute(
            update(SourceFile)
            .where(
                SourceFile.source_id == source.id,
                SourceFile.name == f.name,
                SourceFile.size == f.size,
                SourceFile.mtime == f.mtime,
            )
            .values(status="fetched", fetched_at=now, sha256=row.sha256, file_id=row.id)
        )
    POLL_FILES.labels(source=spec.name).inc()
    if spec.after_fetch == "delete":
        await sftp.remove(remote_path)
    elif spec.after_fetch == "move":
        target_dir = posixpath.join(spec.directory, spec.move_to)
        if not await sftp.isdir(target_dir):
            await sftp.mkdir(target_dir)
        target = posixpath.join(target_dir, f.name)
        if await sftp.exists(target):
            await sftp.remove(target)
        await sftp.rename(remote_path, target)
    log.info("file fetched", size=f.size, sha256=row.sha256, after_fetch=spec.after_fetch)


async def poll_source(
    db: Database,
    storage: Storage,
    source: Source,
    observations: Observations,
    owner: str,
    clock: Clock = utc_now,
) -> PollResult:
    """One pass over one source. Connection errors propagate to the caller's backoff."""
    spec = SourceSpec.model_validate(source.spec)
    structlog.contextvars.bind_contextvars(tenant=source.tenant.slug, source=spec.name)
    result = PollResult()
    POLLS.labels(source=spec.name).inc()
    try:
        async with await connect(spec.remote) as conn, conn.start_sftp_client() as sftp:
            files = await list_remote(sftp, spec)
            result.listed = len(files)
            now = clock()
            oldest_waiting: int | None = None
            for f in files:
                if await _already_handled(db, source, f, now):
                    observations.stable(source.id, f)
                    continue
                stable = observations.stable(source.id, f)
                old_enough = now.timestamp() - f.mtime >= spec.min_age_seconds
                if not (stable and old_enough):
                    result.waiting.append(f.name)
                    oldest_waiting = f.mtime if oldest_waiting is None else oldest_waiting
                    continue
                if not await claim(db, source, f, owner, now):
                    continue
                structlog.contextvars.bind_contextvars(remote_file=f.name)
                try:
                    await _fetch_one(db, storage, sftp, source, spec, f, now)
                except (OSError, asyncssh.Error) as exc:
                    await _release(db, source, f, str(exc))
                    raise
                finally:
                    structlog.contextvars.unbind_contextvars("remote_file")
                result.fetched.append(f.name)
            UNFETCHED_AGE.labels(source=spec.name).set(
                max(0.0, time.time() - oldest_waiting) if oldest_waiting else 0.0
            )
    finally:
        structlog.contextvars.unbind_contextvars("tenant", "source")
    return result


async def _release(db: Database, source: Source, f: RemoteFile, error: str) -> None:
    """A failed fetch gives its claim back so the next pass tries again."""
    async with db.transaction() as session:
        row = await session.scalar(
            select(SourceFile).where(
                SourceFile.source_id == source.id,
                SourceFile.name == f.name,
                SourceFile.size == f.size,
                SourceFile.mtime == f.mtime,
            )
        )
        if row is not None and row.status != "fetched":
            await session.delete(row)
    POLL_ERRORS.labels(source=source.name, reason="fetch").inc()
    log.warning("fetch failed; will retry", error=error)


async def record_outcome(db: Database, source: Source, now: datetime, error: str | None) -> None:
    """Track failing time; past the spec's limit raise `source_unreachable` once per outage."""
    spec = SourceSpec.model_validate(source.spec)
    alert: AlertRaised | None = None
    async with db.transaction() as session:
        row = await session.get(Source, source.id)
        assert row is not None
        row.last_poll_at = now
        if error is None:
            row.last_success_at, row.failing_since, row.last_error = now, None, None
            row.alerted_unreachable, row.consecutive_failures = False, 0
        else:
            row.failing_since = row.failing_since or now
            row.consecutive_failures += 1
            row.last_error = error
            limit = timedelta(minutes=spec.unreachable_alert_minutes)
            if not row.alerted_unreachable and now - row.failing_since >= limit:
                row.alerted_unreachable = True
                alert = AlertRaised(
                    kind="source_unreachable",
                    cause_key=f"source:{row.id}:{row.failing_since.isoformat()}",
                    tenant_id=row.tenant_id,
                    tenant=source.tenant.slug,
                    summary=(
                        f"source {spec.name} ({spec.remote.label}) unreachable since "
                        f"{row.failing_since.isoformat()}: {error}"
                    ),
                    details={
                        "source": spec.name,
                        "host": spec.remote.host,
                        "port": spec.remote.port,
                        "failing_since": row.failing_since.isoformat(),
                        "last_error": error,
                    },
                )
                # Committed with the flag that stops it being raised again.
                stage(session, alert)
    if alert is not None:
        log.error("source unreachable", source=spec.name, error=error)


MAX_BACKOFF = timedelta(minutes=15)


def next_poll_delay(source: Source) -> timedelta:
    """The interval, doubled per failure in a row (capped): a dead server is not hammered."""
    spec = SourceSpec.model_validate(source.spec)
    base = timedelta(seconds=spec.interval_seconds)
    if not source.consecutive_failures:
        return base
    return max(base, min(base * 2 ** min(source.consecutive_failures, 10), MAX_BACKOFF))


def due(source: Source, now: datetime) -> bool:
    last = source.last_poll_at
    return last is None or now - last >= next_poll_delay(source)
