"""Actions on incidents, as people send them: checked, then sent to the monitor as a command.

The console and the CLI both call `request`: it refuses at once what the monitor
would refuse (so the person hears why) and stages a `courier.incident.act` command in
the same transaction. The monitor owns incidents; it checks again and carries the
command out. The incident row tells what became of a command (`progress`), so nothing
else records it, and `pending` lists what was asked and not carried out yet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from courier.common.db.models_incidents import Incident
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import INCIDENT_ACT, IncidentAct
from courier.common.outbox import stage

Action = Literal["ack", "resolve", "note"]
WHAT: dict[str, str] = {"ack": "acknowledgement", "resolve": "resolution", "note": "note"}


class ActionRefused(Exception):
    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class Progress:
    outcome: Literal["applied", "refused"]
    message: str


@dataclass(frozen=True)
class PendingAction:
    action: str
    by: str
    requested_at: datetime
    # False while the command waits in the outbox (the bus was not reachable).
    sent: bool


async def find(
    session: AsyncSession, incident_id: uuid.UUID, *, lock: bool = False
) -> Incident | None:
    """The incident with its notes and timers (locked until the transaction ends: `lock`)."""
    query = (
        select(Incident)
        .where(Incident.id == incident_id)
        .options(selectinload(Incident.notes), selectinload(Incident.timers))
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


def refusal(incident: Incident | None, incident_id: uuid.UUID, action: Action) -> str | None:
    """Why `action` cannot be carried out on the incident now (None: it can)."""
    if incident is None:
        return f"no incident {incident_id}"
    if action == "ack" and incident.state != "open":
        return f"incident {incident.id} is {incident.state}; only open ones are acknowledged"
    if action == "resolve" and incident.state == "resolved":
        return f"incident {incident.id} is resolved already"
    return None


def carried_out(incident: Incident, command: IncidentAct) -> bool:
    """Whether the change `command` asks for is on the incident (`notes` loaded).

    A change is dated when the person acted and signed by them, which no other
    change shares.
    """
    at, by = command.occurred_at, command.by
    if command.action == "ack":
        return incident.acknowledged_at == at and incident.acknowledged_by == by
    if command.action == "resolve":
        return incident.resolved_at == at and incident.resolved_by == by
    return any(
        n.at == at and n.author == by and n.kind == command.note_kind and n.text == command.text
        for n in incident.notes
    )


def progress(incident: Incident | None, command: IncidentAct) -> Progress | None:
    """What became of `command`: carried out, refused, or (None) not yet."""
    if incident is not None and carried_out(incident, command):
        done = {"ack": f"acknowledged by {command.by}", "resolve": f"resolved by {command.by}"}
        message = done.get(command.action, f"note added by {command.by}")
        return Progress("applied", f"incident {incident.id} {message}")
    if (why := refusal(incident, command.incident_id, command.action)) is not None:
        return Progress("refused", why)
    return None


async def request(
    session: AsyncSession,
    incident_id: uuid.UUID,
    action: Action,
    by: str,
    text: str = "",
    note_kind: str = "note",
) -> IncidentAct:
    """Stage the command in the caller's transaction; `ActionRefused` says why not (an
    unknown note kind, too)."""
    incident = await find(session, incident_id)
    if (why := refusal(incident, incident_id, action)) is not None:
        raise ActionRefused(why, missing=incident is None)
    if action == "note" and not text.strip():
        raise ActionRefused("a note needs some text")
    try:
        command = IncidentAct.model_validate(
            {"incident_id": incident_id, "action": action, "by": by, "text": text,
             "note_kind": note_kind}
        )  # fmt: skip
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ActionRefused(problems) from exc
    stage(session, command)
    return command


async def pending(session: AsyncSession, incident: Incident) -> list[PendingAction]:
    """Actions asked on `incident` (`notes` loaded) that the monitor has not carried out,
    and can still."""
    rows = await session.scalars(
        select(OutboxEvent)
        .where(
            OutboxEvent.subject == INCIDENT_ACT,
            OutboxEvent.payload["incident_id"].as_string() == str(incident.id),
        )
        .order_by(OutboxEvent.id)
    )
    out = []
    for row in rows:
        command = IncidentAct.model_validate(row.payload)
        if progress(incident, command) is None:
            out.append(
                PendingAction(
                    command.action, command.by, command.occurred_at, row.published_at is not None
                )
            )
    return out
