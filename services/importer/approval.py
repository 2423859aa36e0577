"""Held imports: a person approves exactly the change set shown, or rejects it.

Approving recomputes the change set against today's data in the transaction
that applies it; if it is not the one that was shown, nothing is applied and
the new one is shown instead, to be approved again. Files of a feed are
approved in arrival order, like they are imported.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, update

from courier.common.announce import event_for
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile
from courier.common.events import Event
from courier.common.logging import get_logger
from courier.common.outbox import stage
from courier.common.storage import Storage
from courier.importer.apply import PlanChanged, compute, events_for, spec_of
from courier.importer.ordering import feed_lock
from courier.importer.results import write_result

log = get_logger(__name__)

CHANGED = "the data changed since this change set was shown; review it and approve again"


class ApprovalError(Exception):
    pass


@dataclass
class Decision:
    outcome: str  # applied | changed | discarded
    message: str
    imp: Import
    # Already staged in the outbox with the decision; the caller flushes it.
    events: list[Event] = field(default_factory=list)


async def _held(db: Database, import_id: uuid.UUID) -> Import:
    async with db.session() as session:
        imp = await session.get(Import, import_id)
        if imp is None:
            raise ApprovalError(f"no import {import_id}")
        if imp.status != "awaiting_approval":
            raise ApprovalError(f"import {import_id} is {imp.status}, not awaiting approval")
        earlier = await session.scalar(
            select(Import)
            .where(
                Import.feed_id == imp.feed_id,
                Import.status == "awaiting_approval",
                Import.received_at < imp.received_at,
            )
            .order_by(Import.received_at)
            .limit(1)
        )
    if earlier is not None:
        raise ApprovalError(
            f"decide on the earlier import {earlier.id} ({earlier.file_name}) first: "
            "files of a feed are applied in arrival order"
        )
    return imp


async def _announce(db: Database, storage: Storage, imp: Import) -> list[Event]:
    """The partner's result file, and the events, for a decided import."""
    async with db.session() as session:
        row = await session.get(ReceivedFile, imp.file_id)
    if row is None:
        return []
    await write_result(db, storage, imp, row.tenant.slug)
    return events_for(imp, event_for(row, row.tenant))


async def approve(db: Database, storage: Storage, import_id: uuid.UUID, by: str) -> Decision:
    imp = await _held(db, import_id)
    if imp.feed is None:
        raise ApprovalError(f"import {import_id}: its feed no longer exists")
    spec = spec_of(imp.feed)
    async with feed_lock(db, imp.feed.id):
        imp = await _held(db, import_id)
        # The decision is on record before anything is applied: if this process stops
        # after the change set commits, the importer finishes the job
        # (`finish_interrupted`): result file, events, decision time.
        await _mark(db, imp.id, decision="approve", by=by)
        imp = await _held(db, import_id)
        shown = (imp.details or {}).get("plan_sha256")
        try:
            done = await compute(
                db, storage, imp, spec, apply=True, guarded=False, replace=True, expect_plan=shown
            )
        except PlanChanged:
            again = await compute(
                db, storage, imp, spec, apply=False, guarded=False, replace=True, hold=CHANGED
            )
            await _mark(db, again.id, decision=None, by=None)
            await _announce(db, storage, again)
            log.info("approval refused: change set recomputed", import_id=str(import_id))
            return Decision("changed", CHANGED, again)
        events = await _announce(db, storage, done)
        # The events are committed with the decision: published even if this process
        # stops before it gets to the bus (see `courier.common.outbox`).
        await _mark(db, done.id, decision="approve", by=by, decided=True, events=events)
    log.info("import approved", import_id=str(import_id), by=by, status=done.status)
    return Decision("applied", f"applied: {done.status}", done, events)


async def reject(db: Database, storage: Storage, import_id: uuid.UUID, by: str) -> Decision:
    imp = await _held(db, import_id)
    async with db.transaction() as session:
        stored = await session.get(Import, imp.id)
        assert stored is not None
        stored.status = "discarded"
        stored.decision, stored.decided_by, stored.decided_at = "reject", by, datetime.now(UTC)
    log.info("import rejected", import_id=str(import_id), by=by)
    await _announce(db, storage, stored)
    return Decision("discarded", "change set discarded; nothing applied", stored)


async def _mark(
    db: Database,
    import_id: uuid.UUID,
    *,
    decision: str | None,
    by: str | None,
    decided: bool = False,
    events: list[Event] | None = None,
) -> None:
    async with db.transaction() as session:
        stored = await session.get(Import, import_id)
        assert stored is not None
        stage(session, *(events or []))
        stored.decision, stored.decided_by = decision, by
        stored.decided_at = datetime.now(UTC) if decided else None


async def _drop_request(db: Database, import_id: uuid.UUID) -> None:
    """Forget a decision that could not be carried out, unless it was meanwhile (another
    replica, or the CLI, applied it): the record of who decided stays."""
    async with db.transaction() as session:
        await session.execute(
            update(Import)
            .where(
                Import.id == import_id,
                Import.status == "awaiting_approval",
                Import.decided_at.is_(None),
            )
            .values(decision=None, decided_by=None)
            .execution_options(synchronize_session=False)
        )


async def request(db: Database, import_id: uuid.UUID, decision: str, by: str) -> Import:
    """Record a person's decision for the importer to carry out (the console's way in)."""
    await _held(db, import_id)
    async with db.transaction() as session:
        stored = await session.get(Import, import_id)
        assert stored is not None
        stored.decision, stored.decided_by, stored.decided_at = decision, by, None
    return stored


async def finish_interrupted(db: Database, storage: Storage) -> list[Decision]:
    """Approvals whose change set was applied but whose process stopped before the decision
    was recorded as done: write the result file, stage the events, record the time."""
    async with db.session() as session:
        stuck = list(
            await session.scalars(
                select(Import)
                .where(
                    Import.status != "awaiting_approval",
                    Import.decision == "approve",
                    Import.decided_at.is_(None),
                )
                .order_by(Import.received_at)
            )
        )
    out = []
    for imp in stuck:
        if imp.feed_id is None:
            continue
        # An approval still running elsewhere holds the feed's lock until it is done.
        async with feed_lock(db, imp.feed_id):
            async with db.session() as session:
                current = await session.get(Import, imp.id)
            if current is None or current.decided_at is not None:
                continue
            events = await _announce(db, storage, current)
            await _mark(
                db, imp.id, decision="approve", by=current.decided_by, decided=True, events=events
            )
        log.warning("interrupted approval finished", import_id=str(imp.id), status=imp.status)
        out.append(Decision("applied", f"applied: {current.status}", current, events))
    return out


async def carry_out_requests(db: Database, storage: Storage) -> list[Decision]:
    """Act on decisions recorded by `request`; what cannot be done is logged and dropped."""
    finished = await finish_interrupted(db, storage)
    async with db.session() as session:
        pending = list(
            await session.scalars(
                select(Import)
                .where(
                    Import.status == "awaiting_approval",
                    Import.decision.is_not(None),
                    Import.decided_at.is_(None),
                )
                .order_by(Import.received_at)
            )
        )
    out = finished
    for imp in pending:
        try:
            if imp.decision == "approve":
                out.append(await approve(db, storage, imp.id, imp.decided_by or "console"))
            else:
                out.append(await reject(db, storage, imp.id, imp.decided_by or "console"))
        except ApprovalError as exc:
            log.warning("decision not carried out", import_id=str(imp.id), error=str(exc))
            await _drop_request(db, imp.id)
    return out
