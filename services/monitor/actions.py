"""People's actions on incidents, carried out: acknowledge, resolve, add a note.

They arrive as `courier.incident.act` commands (from the console or the CLI, through
the outbox); the monitor owns incidents and their SLA timers, so it alone changes them.
Acknowledging stops escalation (the notifier pages on only while an incident is open)
and leaves the SLA clocks running; resolving stops every clock; a note may move the
partner clocks (`Incident.add_note`). Each takes effect as of the moment the person
acted, which also marks the change as theirs: a redelivered command finds it made and
makes no second note. A command that can no longer be carried out (the incident was
resolved meanwhile) is refused and logged; the incident shows who did what.
"""

from __future__ import annotations

import structlog

from courier.common.db.models_incidents import Incident, SlaPolicy
from courier.common.events import IncidentAct
from courier.common.incident_actions import Progress, find, progress
from courier.common.logging import get_logger
from courier.common.uow import UnitOfWork

log = get_logger(__name__)


async def act(cmd: IncidentAct, uow: UnitOfWork, policy: SlaPolicy) -> Progress:
    """Carry out one action in one transaction; a refusal is returned, never raised."""
    structlog.contextvars.bind_contextvars(incident_id=str(cmd.incident_id))
    try:
        async with uow:
            incident = await find(uow.session, cmd.incident_id, lock=True)
            earlier = progress(incident, cmd)
            if earlier is None and incident is not None:
                _apply(incident, cmd, policy)
            outcome = earlier or progress(incident, cmd)
        assert outcome is not None
        if earlier is None:
            log.info("incident action carried out", action=cmd.action, by=cmd.by)
        elif earlier.outcome == "refused":
            log.warning(
                "incident action refused", action=cmd.action, by=cmd.by, reason=earlier.message
            )
        else:
            log.info("incident action already carried out", action=cmd.action, by=cmd.by)
        return outcome
    finally:
        structlog.contextvars.unbind_contextvars("incident_id")


def _apply(incident: Incident, cmd: IncidentAct, policy: SlaPolicy) -> None:
    at = cmd.occurred_at
    if cmd.action == "ack":
        incident.acknowledge(at, cmd.by)
    elif cmd.action == "resolve":
        incident.resolve(at, cmd.by, cmd.text or None)
    else:
        incident.add_note(at, cmd.by, cmd.text, cmd.note_kind, policy)
