"""Held imports: a person approves exactly the change set shown, or rejects it.

Decisions arrive as `courier.import.decide` commands (from the console or the
CLI, through the outbox) and are carried out here, under the feed's lock, in one
transaction with the change set, the result file and the events: an approval cut
off half-way is redelivered and applied once. Approving recomputes the change
set against today's data; if it is not the one that was shown, nothing is applied
and the new one is held instead, to be approved again. Files of a feed are
decided in arrival order, like they are imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from courier.common.db.models import Import, ReceivedFile
from courier.common.decisions import refusal
from courier.common.events import ImportDecide
from courier.common.logging import get_logger
from courier.common.received import event_for
from courier.common.uow import UnitOfWork
from courier.importer.apply import PlanChanged, compute, conclude, spec_of
from courier.importer.schedule import defer, slot_for

log = get_logger(__name__)

CHANGED = "the data changed since this change set was shown; review it and approve again"
# Refused decisions kept on the import for support (newest last).
KEEP_REFUSALS = 20


@dataclass
class Decision:
    outcome: str  # applied | scheduled | changed | discarded | refused
    message: str
    imp: Import | None


async def decide(cmd: ImportDecide, uow: UnitOfWork) -> Decision:
    """Carry out one decision; a refusal is recorded on the import, never raised."""
    structlog.contextvars.bind_contextvars(import_id=str(cmd.import_id))
    try:
        async with uow:
            decision = await _carry_out(uow, cmd)
    finally:
        structlog.contextvars.unbind_contextvars("import_id")
    if decision.outcome == "refused":
        log.warning("decision refused", by=cmd.by, decision=cmd.decision, reason=decision.message)
    else:
        log.info("decision carried out", by=cmd.by, decision=cmd.decision, outcome=decision.outcome)
    return decision


async def _carry_out(uow: UnitOfWork, cmd: ImportDecide) -> Decision:
    session = uow.session
    imp = await session.get(Import, cmd.import_id)
    if imp is not None and imp.tenant_id != cmd.tenant_id:
        imp = None
    if imp is not None and imp.feed_id is not None:
        await uow.lock(imp.feed_id)
        await session.refresh(imp)
    if (why := await refusal(session, imp, cmd.import_id)) is not None:
        if imp is not None:
            _record_refusal(imp, cmd, why)
        return Decision("refused", why, imp)
    assert imp is not None and imp.feed is not None  # `refusal` said so
    row = await session.get(ReceivedFile, imp.file_id)
    assert row is not None
    event = event_for(row, row.tenant)
    now = datetime.now(UTC)
    if cmd.decision == "reject":
        imp.status = "discarded"
        imp.decision, imp.decided_by, imp.decided_at = "reject", cmd.by, now
        await conclude(uow, imp, event)
        return Decision("discarded", "change set discarded; nothing applied", imp)
    spec = spec_of(imp.feed)
    shown = (imp.details or {}).get("plan_sha256")
    # Approved outside the feed's apply window (or behind a file waiting for it): the
    # change set shown is checked now and applied at the window.
    slot = await slot_for(session, imp.feed, spec, imp, uow.clock.now())
    try:
        await compute(
            uow, imp, spec, apply=slot is None, guarded=False, replace=True, expect_plan=shown
        )
    except PlanChanged:
        await session.refresh(imp)
        await compute(uow, imp, spec, apply=False, guarded=False, replace=True, hold=CHANGED)
        await conclude(uow, imp, event)
        return Decision("changed", CHANGED, imp)
    imp.decision, imp.decided_by, imp.decided_at = "approve", cmd.by, now
    if slot is not None:
        await defer(session, imp, slot)
    await conclude(uow, imp, event)
    if imp.status == "scheduled":
        return Decision("scheduled", f"approved: {imp.details['scheduled']}", imp)
    return Decision("applied", f"applied: {imp.status}", imp)


def _record_refusal(imp: Import, cmd: ImportDecide, why: str) -> None:
    details = dict(imp.details or {})
    refused = [*details.get("refused_decisions", []), {
        "decision": cmd.decision,
        "by": cmd.by,
        "at": datetime.now(UTC).isoformat(),
        "requested_at": cmd.occurred_at.isoformat(),
        "reason": why,
    }]  # fmt: skip
    details["refused_decisions"] = refused[-KEEP_REFUSALS:]
    imp.details = details
