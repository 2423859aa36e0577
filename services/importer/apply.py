"""The importer's one handler: a received file in, one committed import (and its events) out."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, ImportRecord
from courier.common.events import (
    Event,
    FileReceived,
    FileRejected,
    ImportCompleted,
    ImportCounts,
    ImportFailed,
)
from courier.common.logging import get_logger
from courier.common.metrics import IMPORT_RECORDS, IMPORT_SECONDS, IMPORTS
from courier.common.storage import Storage
from courier.importer import csvfile, leave_balances
from courier.importer.patterns import matches

log = get_logger(__name__)


@dataclass
class Result:
    import_id: str | None
    status: str
    events: list[Event] = field(default_factory=list)


async def find_feed(db: Database, event: FileReceived) -> tuple[Feed | None, list[str]]:
    async with db.session() as session:
        feeds = (
            await session.scalars(
                select(Feed)
                .where(Feed.tenant_id == event.tenant_id, Feed.enabled.is_(True))
                .order_by(Feed.name)
            )
        ).all()
    for feed in feeds:
        if matches(feed.pattern, event.name):
            return feed, []
    return None, [f.pattern for f in feeds]


def events_for(imp: Import, event: FileReceived) -> list[Event]:
    """Events an import stands for; rebuilt the same way on redelivery, so ids dedupe."""
    feed_name = imp.feed.name if imp.feed else None
    if imp.status in ("rejected", "failed"):
        details = dict(imp.details or {})
        out: list[Event] = [
            ImportFailed(
                import_id=imp.id,
                file_id=event.file_id,
                tenant_id=event.tenant_id,
                tenant=event.tenant,
                feed=feed_name,
                name=event.name,
                reason=imp.error or imp.status,
                details=details,
            )
        ]
        if imp.status == "rejected":
            out.insert(
                0,
                FileRejected(
                    file_id=event.file_id,
                    tenant_id=event.tenant_id,
                    tenant=event.tenant,
                    name=event.name,
                    reason=imp.error or "rejected",
                    details=details,
                    import_id=imp.id,
                ),
            )
        return out
    return [
        ImportCompleted(
            import_id=imp.id,
            file_id=event.file_id,
            tenant_id=event.tenant_id,
            tenant=event.tenant,
            feed=feed_name or "",
            name=event.name,
            status=imp.status,
            counts=ImportCounts(
                created=imp.created,
                updated=imp.updated,
                deleted=imp.deleted,
                unchanged=imp.unchanged,
                errored=imp.errored,
            ),
        )
    ]


async def _existing(db: Database, event: FileReceived) -> Import | None:
    async with db.session() as session:
        return await session.scalar(select(Import).where(Import.file_id == event.file_id))


def _new_import(event: FileReceived, feed: Feed | None) -> Import:
    now = datetime.now(UTC)
    return Import(
        tenant_id=event.tenant_id,
        feed_id=feed.id if feed else None,
        feed=feed,
        file_id=event.file_id,
        file_name=event.name,
        storage_key=event.storage_key,
        sha256=event.sha256,
        size=event.size,
        status="received",
        details={},
        received_at=event.occurred_at,
        started_at=now,
    )


async def handle_file_received(db: Database, storage: Storage, event: FileReceived) -> Result:
    structlog.contextvars.bind_contextvars(
        tenant=event.tenant, file_id=str(event.file_id), file_name=event.name
    )
    try:
        return await _handle(db, storage, event)
    finally:
        structlog.contextvars.unbind_contextvars("tenant", "file_id", "file_name", "import_id")


async def _handle(db: Database, storage: Storage, event: FileReceived) -> Result:
    done = await _existing(db, event)
    if done is not None:
        log.info("file already imported; not applying again", import_id=str(done.id))
        return Result(str(done.id), done.status, events_for(done, event))

    started = time.monotonic()
    feed, patterns = await find_feed(db, event)
    imp = _new_import(event, feed)
    kind = feed.kind if feed else "unknown"

    if feed is None:
        imp.status = "rejected"
        imp.error = "unrecognised file name"
        imp.details = {"expected_patterns": patterns}
        return await _commit_without_rows(db, imp, event, kind, started)

    data = await storage.read(event.storage_key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != event.sha256:
        # Storage does not hold what was announced: retrying will not help, so record it.
        imp.status = "failed"
        imp.error = "stored file does not match its announced checksum"
        imp.details = {"announced_sha256": event.sha256, "stored_sha256": digest}
        return await _commit_without_rows(db, imp, event, kind, started)

    try:
        text = csvfile.decode(data)
        _, rows = csvfile.read_rows(text, leave_balances.COLUMNS)
        parsed: list[tuple[int, leave_balances.LeaveRow | str]] = []
        first_row_of: dict[tuple[str, str], int] = {}
        for row_number, values in rows:
            if isinstance(values, str):
                parsed.append((row_number, values))
                continue
            try:
                row = leave_balances.parse_row(values)
            except leave_balances.RowError as exc:
                parsed.append((row_number, str(exc)))
                continue
            if row.key in first_row_of:
                parsed.append(
                    (
                        row_number,
                        f"duplicate key {row.key_text} (first on row {first_row_of[row.key]})",
                    )
                )
                continue
            first_row_of[row.key] = row_number
            parsed.append((row_number, row))
        if not parsed:
            raise csvfile.FileRejected("header only: the file has no rows")
    except csvfile.FileRejected as exc:
        imp.status = "rejected"
        imp.error = exc.reason
        imp.details = dict(exc.details)
        return await _commit_without_rows(db, imp, event, kind, started)

    try:
        async with db.transaction() as session:
            session.add(imp)
            await session.flush()
            structlog.contextvars.bind_contextvars(import_id=str(imp.id))
            existing = await leave_balances.load_existing(session, event.tenant_id)
            records: list[ImportRecord] = []
            counts = ImportCounts()
            for row_number, item in parsed:
                if isinstance(item, str):
                    records.append(
                        ImportRecord(
                            import_id=imp.id,
                            row_number=row_number,
                            action="errored",
                            error=item,
                        )
                    )
                    counts.errored += 1
                    continue
                change = leave_balances.apply_row(session, event.tenant_id, existing, item)
                setattr(counts, change.action, getattr(counts, change.action) + 1)
                records.append(
                    ImportRecord(
                        import_id=imp.id,
                        row_number=row_number,
                        record_key=item.key_text,
                        action=change.action,
                        changes=change.changes,
                    )
                )
            session.add_all(records)
            imp.created, imp.updated, imp.unchanged = (
                counts.created,
                counts.updated,
                counts.unchanged,
            )
            imp.deleted, imp.errored = counts.deleted, counts.errored
            imp.status = "completed_with_errors" if counts.errored else "completed"
            imp.finished_at = datetime.now(UTC)
    except IntegrityError:
        # Another replica committed this file first.
        done = await _existing(db, event)
        if done is None:
            raise
        return Result(str(done.id), done.status, events_for(done, event))

    for action in ("created", "updated", "deleted", "unchanged", "errored"):
        n = getattr(counts, action)
        if n:
            IMPORT_RECORDS.labels(kind=kind, action=action).inc(n)
    return _finish(imp, event, kind, started)


async def _commit_without_rows(
    db: Database, imp: Import, event: FileReceived, kind: str, started: float
) -> Result:
    imp.finished_at = datetime.now(UTC)
    try:
        async with db.transaction() as session:
            session.add(imp)
    except IntegrityError:
        done = await _existing(db, event)
        if done is None:
            raise
        return Result(str(done.id), done.status, events_for(done, event))
    return _finish(imp, event, kind, started)


def _finish(imp: Import, event: FileReceived, kind: str, started: float) -> Result:
    IMPORTS.labels(kind=kind, status=imp.status).inc()
    IMPORT_SECONDS.labels(kind=kind).observe(time.monotonic() - started)
    log.info(
        "import finished",
        import_id=str(imp.id),
        status=imp.status,
        error=imp.error,
        created=imp.created,
        updated=imp.updated,
        unchanged=imp.unchanged,
        errored=imp.errored,
    )
    return Result(str(imp.id), imp.status, events_for(imp, event))
