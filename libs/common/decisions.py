"""Decisions on held imports, as people send them: checked, then sent as a command.

The console and the CLI both call `request`: it refuses at once what the importer
would refuse (so the person hears why), and stages a `courier.import.decide`
command in the same transaction. The importer checks again under the feed's lock
and carries it out; `pending` shows what was asked and not yet done.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Import
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import IMPORT_DECIDE, ImportDecide
from courier.common.outbox import stage


class DecisionRefused(Exception):
    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class PendingDecision:
    decision: str
    by: str
    requested_at: datetime
    # False while the command waits in the outbox (the bus was not reachable).
    sent: bool


async def refusal(session: AsyncSession, imp: Import | None, import_id: object) -> str | None:
    """Why a decision on `imp` cannot be carried out now (None: it can)."""
    if imp is None:
        return f"no import {import_id}"
    if imp.status != "awaiting_approval":
        return f"import {imp.id} is {imp.status}, not awaiting approval"
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
        return (
            f"decide on the earlier import {earlier.id} ({earlier.file_name}) first: "
            "files of a feed are applied in arrival order"
        )
    if imp.feed_id is None:
        return f"import {imp.id}: its feed no longer exists"
    return None


async def request(
    session: AsyncSession,
    import_id: uuid.UUID,
    decision: Literal["approve", "reject"],
    by: str,
    tenant_id: uuid.UUID | None = None,
) -> ImportDecide:
    """Stage the command in the caller's transaction; `DecisionRefused` says why not.

    `tenant_id` limits the request to one tenant's imports (a customer's console).
    """
    imp = await session.get(Import, import_id)
    if imp is not None and tenant_id is not None and imp.tenant_id != tenant_id:
        imp = None
    if (why := await refusal(session, imp, import_id)) is not None:
        raise DecisionRefused(why, missing=imp is None)
    assert imp is not None
    command = ImportDecide(import_id=imp.id, tenant_id=imp.tenant_id, decision=decision, by=by)
    stage(session, command)
    return command


async def pending(session: AsyncSession, imp: Import) -> list[PendingDecision]:
    """Decisions asked for `imp` that the importer has not carried out or refused yet."""
    if imp.status != "awaiting_approval":
        return []
    refused = [r.get("requested_at", "") for r in (imp.details or {}).get("refused_decisions", [])]
    rows = await session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.subject == IMPORT_DECIDE, OutboxEvent.created_at >= imp.received_at)
        .order_by(OutboxEvent.id)
    )
    out = []
    for row in rows:
        command = ImportDecide.model_validate(row.payload)
        if command.import_id != imp.id or command.occurred_at.isoformat() in refused:
            continue
        if imp.finished_at is not None and command.occurred_at <= imp.finished_at:
            continue  # answered by a recomputed change set, held again
        out.append(
            PendingDecision(
                command.decision, command.by, command.occurred_at, row.published_at is not None
            )
        )
    return out
