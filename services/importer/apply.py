"""The importer's handler: a received file in; its import, audit and events committed together.

One transaction per file holds the import row, the domain changes, the record
audit, the reference to the partner's result file and the staged events. A file
that cannot be applied (malformed, rejected rows) rolls back to a savepoint taken
before its rows were read, and its rejection commits instead: no domain row changes.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Feed, Import, ImportRecord
from courier.common.events import (
    Event,
    FileReceived,
    FileRejected,
    ImportCompleted,
    ImportCounts,
    ImportFailed,
)
from courier.common.feeds import match_feed, split_test
from courier.common.logging import get_logger
from courier.common.metrics import IMPORT_RECORDS, IMPORT_SECONDS, IMPORTS, TEST_IMPORTS
from courier.common.received import event_for
from courier.common.storage import NotFound, Storage
from courier.common.uow import UnitOfWork
from courier.importer import bulk_pg, copy_pg, rows, rowwise, small_pg
from courier.importer.changes import Context, Engine, Outcome, fingerprint
from courier.importer.decode import Decoder
from courier.importer.decode import FileRejected as Refused
from courier.importer.kinds import get_kind
from courier.importer.ordering import enabled_feeds, queue_until
from courier.importer.results import result_key, write_result
from courier.importer.schedule import defer, hold_reason, slot_for, start_live
from courier.importer.spec import FeedSpec
from courier.importer.unwrap import CannotOpen, ChecksumMismatch, opened, unpack

log = get_logger(__name__)

# Content that was applied (or is waiting to be): the same bytes again are a duplicate.
TAKEN = ("completed", "completed_with_errors", "awaiting_approval", "scheduled")
MB = 1024 * 1024
# Up to this size a file is read in Python (a few ms for 1,000 rows) and imported in one
# statement (`small_pg`), rather than parsed by PostgreSQL and merged through temporary
# tables (`copy_pg`, `bulk_pg`), whose fixed cost of some fifteen round trips is what
# bounds a feed flooded with small files.
PYTHON_READS_UP_TO = 256 * 1024


class FeedChanged(Exception):
    """The feed a file was matched to is gone; the event is redelivered and matched again."""


class PlanChanged(Exception):
    """The change set recomputed for approval is not the one a person was shown."""


def spec_of(feed: Feed) -> FeedSpec:
    return FeedSpec.of_feed(feed.name, feed.kind, feed.pattern, feed.spec or {})


def events_for(imp: Import, event: FileReceived) -> list[Event]:
    """Events an import stands for; rebuilt the same way on redelivery, so ids dedupe."""
    feed_name = imp.feed.name if imp.feed else None
    where = {"feed_id": imp.feed_id, "received_at": imp.received_at, "test": imp.test}
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
                **where,
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
                    feed=feed_name,
                    **where,
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
            **where,
        )
    ]


async def imported(session: AsyncSession, file_id: uuid.UUID) -> uuid.UUID | None:
    """The import of the file, if it has one (its id: asked once or twice a file, so no
    row is loaded with its tenant and feed)."""
    return await session.scalar(select(Import.id).where(Import.file_id == file_id))


def is_test(event: FileReceived, feed: Feed | None) -> bool:
    """Sent to /inbound/test/, or to a feed marked `test: true`: checked, never applied."""
    return split_test(event.name)[1] or (feed is not None and spec_of(feed).test)


def _new_import(event: FileReceived, feed: Feed | None) -> Import:
    imp = Import(
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
        created=0,
        updated=0,
        deleted=0,
        unchanged=0,
        errored=0,
        received_at=event.occurred_at,
        started_at=datetime.now(UTC),
        test=is_test(event, feed),
    )
    # Fixed from the start (it names the file by what never changes), so the row carries
    # it from its first write instead of an UPDATE of its own.
    imp.result_key = result_key(event.tenant, imp)
    return imp


async def handle(event: FileReceived, uow: UnitOfWork, *, last_try: bool = False) -> list[Import]:
    """Import the file of `event`; returns the imports this call committed, in order.

    A feed's files land in arrival order: a file of the feed that arrived earlier and
    is not imported yet (its event is late, or being redelivered) is imported first.
    Each file commits in its own transaction, so one bad file never undoes another's
    import, and each is exactly-once on its own (`imports.file_id` is unique and is
    checked under the feed's lock). `last_try`: the bus will not deliver `event` again,
    so a database error is the file's failure now (`import_or_fail`).
    """
    structlog.contextvars.bind_contextvars(tenant=event.tenant, file_id=str(event.file_id))
    started = time.monotonic()
    try:
        async with uow.connected():
            return await _handle(event, uow, started, last_try=last_try)
    finally:
        structlog.contextvars.unbind_contextvars("tenant", "file_id", "file_name", "import_id")


async def _handle(
    event: FileReceived, uow: UnitOfWork, started: float, *, last_try: bool
) -> list[Import]:
    """`handle`, its transactions on one connection."""
    async with uow:
        feeds = await enabled_feeds(uow.session, event.tenant_id)
        name, in_test_folder = split_test(event.name)
        feed = match_feed(feeds, name)
        # A file of a feed is checked again under the feed's lock (`import_file`), and
        # the queue holds only files not imported yet: no look-up here for those.
        if feed is None and await imported(uow.session, event.file_id) is not None:
            log.info("file already imported; not applying again")
            return []
        if feed is None:
            imp = _new_import(event, None)
            imp.status = "rejected"
            imp.error = "unrecognised file name"
            imp.details = {"expected_patterns": [f.pattern for f in feeds]}
            await _record(uow, imp, event)
        elif not in_test_folder:
            queue = await queue_until(uow.session, feed, feeds, event.file_id)
    if feed is None:
        _finish(imp, "unknown", started)
        return [imp]
    if in_test_folder:
        # It changes nothing, so it waits for no earlier file of the feed.
        test = await import_or_fail(uow, feed, event, last_try=last_try)
        return [] if test is None else [test]
    done = []
    for row in queue:
        current = event if row.id == event.file_id else event_for(row, row.tenant)
        imp = await import_or_fail(uow, feed, current, last_try=last_try)
        if imp is not None:
            done.append(imp)
    return done


async def import_file(uow: UnitOfWork, feed: Feed, event: FileReceived) -> Import | None:
    """One file of `feed` in one transaction: duplicate, held, applied or rejected.

    None if another replica (or an earlier event's drain) imported it meanwhile.
    """
    structlog.contextvars.bind_contextvars(file_id=str(event.file_id), file_name=event.name)
    started = time.monotonic()
    async with uow:
        await uow.lock(feed.id)
        session = uow.session
        if await imported(session, event.file_id) is not None:
            return None
        current = await session.get(Feed, feed.id)
        if current is None or not current.enabled:
            # Changed while the file waited: the redelivered event matches it afresh.
            raise FeedChanged(f"feed {feed.name} was removed or disabled; matching again")
        feed = current
        spec = spec_of(feed)
        imp = _new_import(event, feed)
        structlog.contextvars.bind_contextvars(import_id=str(imp.id))
        if event.size > spec.max_size_mb * MB:
            imp.status, imp.error = (
                "rejected",
                f"file too large: {event.size} bytes, "
                f"the feed takes at most {spec.max_size_mb:g} MB",
            )
            imp.details = {"size": event.size, "max_size_mb": spec.max_size_mb}
            await _record(uow, imp, event)
        # A test file is never a duplicate, nor is a live file a duplicate of a test file.
        elif not imp.test and (
            earlier := (
                await session.execute(
                    select(Import.id, Import.file_name)
                    .where(
                        Import.tenant_id == event.tenant_id,
                        Import.feed_id == feed.id,
                        Import.sha256 == event.sha256,
                        Import.status.in_(TAKEN),
                        Import.test.is_(False),
                    )
                    .order_by(Import.received_at)
                    .limit(1)
                )
            ).first()
        ):
            imp.status = "duplicate"
            imp.details = {
                "duplicate_of": str(earlier.id),
                "duplicate_of_file": earlier.file_name,
                "reason": "the same content was already imported by this feed",
            }
            await _record(uow, imp, event)
        else:
            now = uow.clock.now()
            start_live(feed, imp, now)
            hold = await hold_reason(session, feed, spec, imp, now)
            # Outside the feed's apply window (or behind a file waiting for it): checked
            # now, applied at the window.
            slot = None if hold else await slot_for(session, feed, spec, imp, now)
            session.add(imp)
            apply = hold is None and slot is None and not imp.test
            await compute(uow, imp, spec, apply=apply, guarded=True, hold=hold)
            if slot is not None:
                await defer(session, imp, slot)
            await conclude(uow, imp, event)
    _finish(imp, feed.kind, started)
    return imp


# The database refused or failed: through SQLAlchemy, or straight from asyncpg where a
# bulk import on PostgreSQL uses its connection directly (COPY, set-based merges).
DATABASE_ERRORS = (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError)
DATABASE_FAILURE = (
    "a database error on our side stopped the import; nothing was changed "
    "and our support team has been alerted"
)


async def import_or_fail(
    uow: UnitOfWork, feed: Feed, event: FileReceived, *, last_try: bool
) -> Import | None:
    """`import_file`; a database error is raised while the bus will deliver the event
    again (a passing fault then heals itself), and on the last try it is the file's
    failure: recorded with its result file and `courier.import.failed`, which pages
    on-call. Nothing of the file is applied either way."""
    try:
        return await import_file(uow, feed, event)
    except DATABASE_ERRORS as exc:
        if not last_try:
            raise
        log.exception("import failed on every try; recording the failure")
        cause = database_error(exc)
    started = time.monotonic()
    async with uow:
        await uow.lock(feed.id)
        if await imported(uow.session, event.file_id) is not None:
            return None
        imp = _new_import(event, await uow.session.get(Feed, feed.id))
        imp.status, imp.error = "failed", DATABASE_FAILURE
        imp.details = {"database_error": cause}
        await _record(uow, imp, event)
    _finish(imp, feed.kind, started)
    return imp


def database_error(exc: Exception) -> str:
    """What the database said, for support: its first line, without the statement."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    said = str(orig).strip().splitlines() if orig is not None else []
    return f"{type(exc).__name__}: {said[0] if said else 'no message'}"[:500]


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
    session: AsyncSession,
    path: Path,
    imp: Import,
    spec: FeedSpec,
    *,
    apply: bool,
    guarded: bool,
    sha256: str,
) -> Outcome:
    """`path` holds the file's plaintext, whose sha256 is `sha256`."""
    ctx = Context(imp.tenant_id, imp.feed_id, imp.id, spec, None, apply, guarded)  # type: ignore[arg-type]
    small = path.stat().st_size <= PYTHON_READS_UP_TO
    sqlite = session.bind.dialect.name == "sqlite"
    if not sqlite and not small and copy_pg.eligible(spec):
        outcome = await _plan_by_copy(session, path, imp, ctx, sha256)
        if outcome is not None:
            return outcome
    with path.open("rb") as fh:
        decoder = Decoder(fh, spec.encoding, spec.max_line_chars)
        layout, records = rows.read(spec, decoder.lines())
        checker = rows.RowChecker(spec, layout, await _known_codes(session, imp.tenant_id, layout))
        counted = _Counting(checker.check(n, cells) for n, cells in records)
        ctx.layout = layout
        if sqlite:
            engine: Engine = rowwise.run
        else:
            engine = small_pg.run if small else bulk_pg.run
        outcome = await engine(session, ctx, iter(counted))
        if counted.n == 0:
            raise Refused("header only: the file has no rows")
        if decoder.sha256.hexdigest() != sha256:
            raise ChecksumMismatch(decoder.sha256.hexdigest())
        outcome.details["encoding"] = decoder.encoding
    return outcome


async def _plan_by_copy(
    session: AsyncSession, path: Path, imp: Import, ctx: Context, expected: str
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
    if sha256 != expected:
        raise ChecksumMismatch(sha256)
    outcome = await bulk_pg.merge(raw, ctx)
    outcome.details["encoding"] = copy_pg.label(spec)
    return outcome


async def compute(
    uow: UnitOfWork,
    imp: Import,
    spec: FeedSpec,
    *,
    apply: bool,
    guarded: bool,
    hold: str | None = None,
    replace: bool = False,
    expect_plan: str | None = None,
) -> None:
    """Read the file and compute its change set (applied too, if `apply`) in `uow`'s transaction.

    `imp` is already in the session. `replace` recomputes an existing import
    (approval): its old records go first. With `expect_plan`, a change set other
    than the one shown raises `PlanChanged`, and nothing of it stays. A file that
    cannot be read or is refused rolls back to the savepoint and `imp` says why.
    An encrypted or packed file is read as its plaintext (`unwrap`); a zip is unpacked
    into files of their own instead.
    """
    session = uow.session
    if replace:
        await session.execute(delete(ImportRecord).where(ImportRecord.import_id == imp.id))
    await session.flush()
    try:
        async with (
            local_copy(uow.storage, imp.storage_key) as stored,
            opened(uow, imp, spec, stored) as plain,
            session.begin_nested(),
        ):
            if plain.zip:
                await unpack(uow, imp, plain)
                imp.finished_at = datetime.now(UTC)
                return
            outcome = await _plan(
                session, plain.path, imp, spec, apply=apply, guarded=guarded, sha256=plain.sha256
            )
            if expect_plan is not None and await fingerprint(session, imp.id) != expect_plan:
                raise PlanChanged(str(imp.id))
            _settle(imp, outcome, hold)
            details = {**outcome.details, **plain.details, **_held(imp, outcome, hold)}
            if imp.status == "awaiting_approval":
                details["plan_sha256"] = await fingerprint(session, imp.id)
            imp.details = details
            imp.finished_at = datetime.now(UTC)
        return
    except Refused as exc:
        status, error, details = "rejected", exc.reason, dict(exc.details)
    except ChecksumMismatch as exc:
        status, error = "failed", "stored file does not match its announced checksum"
        details = {"announced_sha256": imp.sha256, "stored_sha256": str(exc)}
    except (NotFound, FileNotFoundError):
        status, error, details = "failed", "the stored file is missing", {}
    except CannotOpen as exc:
        status, error, details = "failed", exc.reason, {"cause": exc.cause}
    # What the savepoint's rollback took back is read again, not lazily (this is async).
    await session.refresh(imp)
    imp.status, imp.error, imp.details = status, error, details
    imp.created = imp.updated = imp.deleted = imp.unchanged = imp.errored = 0
    imp.finished_at = datetime.now(UTC)


def _settle(imp: Import, outcome: Outcome, hold: str | None) -> None:
    c = outcome.counts
    imp.created, imp.updated, imp.deleted = c.created, c.updated, c.deleted
    imp.unchanged, imp.errored = c.unchanged, c.errored
    imp.error = None
    if outcome.rejected:
        imp.status, imp.error = "rejected", outcome.rejected
        imp.created = imp.updated = imp.deleted = imp.unchanged = 0
    elif (hold or outcome.held) and not imp.test:
        imp.status = "awaiting_approval"
    else:
        imp.status = "completed_with_errors" if c.errored else "completed"


def _held(imp: Import, outcome: Outcome, hold: str | None) -> dict:
    reason = outcome.held or hold
    if imp.test and reason:
        # A test file is never held; its preview says the live file would be.
        return {"would_be_held": reason}
    return {"held": reason} if imp.status == "awaiting_approval" and reason else {}


async def conclude(uow: UnitOfWork, imp: Import, event: FileReceived) -> None:
    """The partner's result file and the import's events, in the import's transaction.

    The import row, its result key and its events reach the database with the commit:
    one UPDATE and one INSERT, not a round trip each (a flood of small files is bound
    by round trips)."""
    key = await write_result(uow.session, uow.storage, imp, event.tenant)
    if imp.result_key != key:
        imp.result_key = key
    uow.stage(*events_for(imp, event))


async def _record(uow: UnitOfWork, imp: Import, event: FileReceived) -> None:
    """An import that has no records (unrecognised, too large, duplicate)."""
    imp.finished_at = datetime.now(UTC)
    uow.session.add(imp)
    await conclude(uow, imp, event)


def _finish(imp: Import, kind: str, started: float) -> None:
    """Metrics and the log line of a committed import (a test counts apart: it changed nothing)."""
    (TEST_IMPORTS if imp.test else IMPORTS).labels(kind=kind, status=imp.status).inc()
    IMPORT_SECONDS.labels(kind=kind).observe(time.monotonic() - started)
    if imp.status in ("completed", "completed_with_errors") and not imp.test:
        for action in ("created", "updated", "deleted", "unchanged", "errored"):
            if n := getattr(imp, action):
                IMPORT_RECORDS.labels(kind=kind, action=action).inc(n)
    log.info(
        "import finished",
        import_id=str(imp.id),
        status=imp.status,
        test=imp.test,
        error=imp.error,
        created=imp.created,
        updated=imp.updated,
        deleted=imp.deleted,
        unchanged=imp.unchanged,
        errored=imp.errored,
    )
