"""The importer's handler: a received file in, committed imports (and their events) out."""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.announce import event_for
from courier.common.db.engine import Database, is_sqlite
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
from courier.common.storage import NotFound, Storage
from courier.importer import bulk_pg, copy_pg, rows, rowwise
from courier.importer.changes import Context, Outcome, fingerprint
from courier.importer.decode import Decoder
from courier.importer.decode import FileRejected as Refused
from courier.importer.kinds import get_kind
from courier.importer.ordering import enabled_feeds, feed_lock, match_feed, queue_until
from courier.importer.results import write_result
from courier.importer.spec import FeedSpec

log = get_logger(__name__)

# Content that was applied (or is waiting to be): the same bytes again are a duplicate.
TAKEN = ("completed", "completed_with_errors", "awaiting_approval")
MB = 1024 * 1024


@dataclass
class Result:
    import_id: str | None
    status: str
    events: list[Event] = field(default_factory=list)
    # Imports this handling processed (the partner gets a result file for each).
    done: list[Import] = field(default_factory=list)


class ChecksumMismatch(Exception):
    pass


class PlanChanged(Exception):
    """The change set recomputed for approval is not the one a person was shown."""


def spec_of(feed: Feed) -> FeedSpec:
    return FeedSpec.of_feed(feed.name, feed.kind, feed.pattern, feed.spec or {})


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


async def _existing(db: Database, file_id: uuid.UUID) -> Import | None:
    async with db.session() as session:
        return await session.scalar(select(Import).where(Import.file_id == file_id))


def _new_import(event: FileReceived, feed: Feed | None) -> Import:
    return Import(
        id=uuid.uuid4(),
        tenant_id=event.tenant_id,
        feed_id=feed.id if feed else None,
        file_id=event.file_id,
        file_name=event.name,
        storage_key=event.storage_key,
        sha256=event.sha256,
        size=event.size,
        feed=feed,
        status="received",
        details={},
        received_at=event.occurred_at,
        started_at=datetime.now(UTC),
    )


async def handle_file_received(db: Database, storage: Storage, event: FileReceived) -> Result:
    structlog.contextvars.bind_contextvars(tenant=event.tenant)
    try:
        result = await _handle(db, storage, event)
        for imp in result.done:
            await write_result(db, storage, imp, event.tenant)
        return result
    finally:
        structlog.contextvars.unbind_contextvars("tenant", "file_id", "file_name", "import_id")


async def _handle(db: Database, storage: Storage, event: FileReceived) -> Result:
    done = await _existing(db, event.file_id)
    if done is not None:
        log.info("file already imported; not applying again", import_id=str(done.id))
        return Result(str(done.id), done.status, events_for(done, event))

    feeds = await enabled_feeds(db, event.tenant_id)
    feed = match_feed(feeds, event.name)
    if feed is None:
        imp = _new_import(event, None)
        imp.status = "rejected"
        imp.error = "unrecognised file name"
        imp.details = {"expected_patterns": [f.pattern for f in feeds]}
        return await _record_outcome(db, imp, event, "unknown", time.monotonic())

    events: list[Event] = []
    processed: list[Import] = []
    mine: Result | None = None
    async with feed_lock(db, feed.id):
        for row in await queue_until(db, feed, feeds, event.file_id):
            current = event if row.id == event.file_id else event_for(row, row.tenant)
            result = await import_file(db, storage, feed, current)
            events += result.events
            processed += result.done
            if row.id == event.file_id:
                mine = result
    if mine is None:
        # Imported meanwhile by another replica (or by an earlier event's drain).
        done = await _existing(db, event.file_id)
        if done is None:
            raise RuntimeError(f"file {event.file_id} is neither queued nor imported")
        return Result(str(done.id), done.status, events + events_for(done, event), processed)
    return Result(mine.import_id, mine.status, events, processed)


async def import_file(db: Database, storage: Storage, feed: Feed, event: FileReceived) -> Result:
    """One file of `feed`, under the feed's lock: duplicate, held, applied or rejected."""
    structlog.contextvars.bind_contextvars(file_id=str(event.file_id), file_name=event.name)
    started = time.monotonic()
    spec = spec_of(feed)
    imp = _new_import(event, feed)
    structlog.contextvars.bind_contextvars(import_id=str(imp.id))
    if event.size > spec.max_size_mb * MB:
        imp.status, imp.error = (
            "rejected",
            (f"file too large: {event.size} bytes, the feed takes at most {spec.max_size_mb:g} MB"),
        )
        imp.details = {"size": event.size, "max_size_mb": spec.max_size_mb}
        return await _record_outcome(db, imp, event, feed.kind, started)

    async with db.session() as session:
        earlier = await session.scalar(
            select(Import)
            .where(
                Import.tenant_id == event.tenant_id,
                Import.feed_id == feed.id,
                Import.sha256 == event.sha256,
                Import.status.in_(TAKEN),
            )
            .order_by(Import.received_at)
            .limit(1)
        )
        waiting = await session.scalar(
            select(Import.id)
            .where(Import.feed_id == feed.id, Import.status == "awaiting_approval")
            .limit(1)
        )
    if earlier is not None:
        imp.status = "duplicate"
        imp.details = {
            "duplicate_of": str(earlier.id),
            "duplicate_of_file": earlier.file_name,
            "reason": "the same content was already imported by this feed",
        }
        return await _record_outcome(db, imp, event, feed.kind, started)

    hold = None
    if spec.holds_for_approval(datetime.now(UTC).date()):
        hold = "the feed holds files for approval (hold_for_approval)"
    elif waiting is not None:
        hold = "an earlier file of this feed awaits approval"
    imp = await compute(db, storage, imp, spec, apply=hold is None, guarded=True, hold=hold)
    return _finish(imp, event, feed.kind, started)


@contextlib.asynccontextmanager
async def local_copy(storage: Storage, key: str) -> AsyncIterator[Path]:
    """A local path to the stored file (object stores: streamed to a temporary file)."""
    path = await storage.local_path(key)
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="courier-import-") as tmp:
        async for chunk in storage.get(key):
            tmp.write(chunk)
        tmp.flush()
        yield Path(tmp.name)


class _Counting:
    def __init__(self, it: Iterator[rows.Row]) -> None:
        self.it = it
        self.n = 0

    def __iter__(self) -> Iterator[rows.Row]:
        for row in self.it:
            self.n += 1
            yield row


async def _known_codes(session: AsyncSession, tenant_id: uuid.UUID, layout: rows.Layout) -> dict:
    known: dict[str, set[str]] = {}
    for f in layout.fields:
        if f.references and f.references not in known:
            table = get_kind(f.references).table
            result = await session.scalars(
                select(table.c.code).where(table.c.tenant_id == tenant_id)
            )
            known[f.references] = set(result)
    return known


async def _plan(
    session: AsyncSession, path: Path, imp: Import, spec: FeedSpec, *, apply: bool, guarded: bool
) -> Outcome:
    ctx = Context(imp.tenant_id, imp.feed_id, imp.id, spec, None, apply, guarded)  # type: ignore[arg-type]
    if not is_sqlite(str(session.bind.url)) and copy_pg.eligible(spec):
        outcome = await _plan_by_copy(session, path, imp, ctx)
        if outcome is not None:
            return outcome
    with path.open("rb") as fh:
        decoder = Decoder(fh, spec.encoding, spec.max_line_chars)
        layout, records = rows.read(spec, decoder.lines())
        checker = rows.RowChecker(spec, layout, await _known_codes(session, imp.tenant_id, layout))
        counted = _Counting(checker.check(n, cells) for n, cells in records)
        ctx.layout = layout
        engine = rowwise.run if is_sqlite(str(session.bind.url)) else bulk_pg.run
        outcome = await engine(session, ctx, iter(counted))
        if counted.n == 0:
            raise Refused("header only: the file has no rows")
        if decoder.sha256.hexdigest() != imp.sha256:
            raise ChecksumMismatch(decoder.sha256.hexdigest())
        outcome.details["encoding"] = decoder.encoding
    return outcome


async def _plan_by_copy(
    session: AsyncSession, path: Path, imp: Import, ctx: Context
) -> Outcome | None:
    """The plain-file path: PostgreSQL parses; None when the file needs the Python reader."""
    spec = ctx.spec
    found = copy_pg.header(path, spec)
    if found is None:
        return None
    layout, skip = found
    ctx.layout = layout
    raw = await bulk_pg.driver(session)
    checker = rows.RowChecker(spec, layout, {})
    await bulk_pg.create_stage(raw, layout.fields)
    staged = await copy_pg.stage(raw, path, spec, layout, skip, bulk_pg.STAGE, checker)
    if staged is None:
        await raw.execute(f"DROP TABLE {bulk_pg.STAGE}")
        return None
    count, sha256 = staged
    if count == 0:
        raise Refused("header only: the file has no rows")
    if sha256 != imp.sha256:
        raise ChecksumMismatch(sha256)
    outcome = await bulk_pg.merge(raw, ctx)
    outcome.details["encoding"] = copy_pg.label(spec)
    return outcome


async def compute(
    db: Database,
    storage: Storage,
    imp: Import,
    spec: FeedSpec,
    *,
    apply: bool,
    guarded: bool,
    hold: str | None = None,
    replace: bool = False,
    expect_plan: str | None = None,
) -> Import:
    """Read the file and compute its change set (applied too, if `apply`), in one transaction.

    `replace` recomputes an existing import (approval): its old records go first;
    with `expect_plan`, a change set other than the one shown raises `PlanChanged`
    and nothing is applied.
    """
    try:
        async with local_copy(storage, imp.storage_key) as path, db.transaction() as session:
            if replace:
                imp = await session.merge(imp)
                await session.execute(delete(ImportRecord).where(ImportRecord.import_id == imp.id))
            else:
                session.add(imp)
            await session.flush()
            outcome = await _plan(session, path, imp, spec, apply=apply, guarded=guarded)
            if expect_plan is not None and await fingerprint(session, imp.id) != expect_plan:
                raise PlanChanged(str(imp.id))
            _settle(imp, outcome, hold)
            details = {**outcome.details, **_held(imp, outcome, hold)}
            if imp.status == "awaiting_approval":
                details["plan_sha256"] = await fingerprint(session, imp.id)
            imp.details = details
            imp.finished_at = datetime.now(UTC)
        return imp
    except Refused as exc:
        status, error, details = "rejected", exc.reason, dict(exc.details)
    except ChecksumMismatch as exc:
        status, error = "failed", "stored file does not match its announced checksum"
        details = {"announced_sha256": imp.sha256, "stored_sha256": str(exc)}
    except (NotFound, FileNotFoundError):
        status, error, details = "failed", "the stored file is missing", {}
    async with db.transaction() as session:
        if replace:
            imp = await session.merge(imp)
            await session.execute(delete(ImportRecord).where(ImportRecord.import_id == imp.id))
        else:
            imp = _copy(imp)
            session.add(imp)
        imp.status, imp.error, imp.details = status, error, details
        imp.created = imp.updated = imp.deleted = imp.unchanged = imp.errored = 0
        imp.finished_at = datetime.now(UTC)
    return imp


def _copy(imp: Import) -> Import:
    """A fresh row for a rolled-back one (the session forgot the original)."""
    cols = [c.key for c in Import.__table__.columns]
    return Import(**{c: getattr(imp, c) for c in cols}, feed=imp.feed)


def _settle(imp: Import, outcome: Outcome, hold: str | None) -> None:
    c = outcome.counts
    imp.created, imp.updated, imp.deleted = c.created, c.updated, c.deleted
    imp.unchanged, imp.errored = c.unchanged, c.errored
    imp.error = None
    if outcome.rejected:
        imp.status, imp.error = "rejected", outcome.rejected
        imp.created = imp.updated = imp.deleted = imp.unchanged = 0
    elif hold or outcome.held:
        imp.status = "awaiting_approval"
    else:
        imp.status = "completed_with_errors" if c.errored else "completed"


def _held(imp: Import, outcome: Outcome, hold: str | None) -> dict:
    reason = outcome.held or hold
    return {"held": reason} if imp.status == "awaiting_approval" and reason else {}


async def _record_outcome(
    db: Database, imp: Import, event: FileReceived, kind: str, started: float
) -> Result:
    """Commit an import that has no records (unrecognised, too large, duplicate)."""
    imp.finished_at = datetime.now(UTC)
    try:
        async with db.transaction() as session:
            session.add(imp)
    except IntegrityError:
        done = await _existing(db, event.file_id)
        if done is None:
            raise
        return Result(str(done.id), done.status, events_for(done, event))
    return _finish(imp, event, kind, started)


def _finish(imp: Import, event: FileReceived, kind: str, started: float) -> Result:
    IMPORTS.labels(kind=kind, status=imp.status).inc()
    IMPORT_SECONDS.labels(kind=kind).observe(time.monotonic() - started)
    if imp.status in ("completed", "completed_with_errors"):
        for action in ("created", "updated", "deleted", "unchanged", "errored"):
            if n := getattr(imp, action):
                IMPORT_RECORDS.labels(kind=kind, action=action).inc(n)
    log.info(
        "import finished",
        import_id=str(imp.id),
        status=imp.status,
        error=imp.error,
        created=imp.created,
        updated=imp.updated,
        deleted=imp.deleted,
        unchanged=imp.unchanged,
        errored=imp.errored,
    )
    return Result(str(imp.id), imp.status, events_for(imp, event), [imp])
