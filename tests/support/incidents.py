"""People's actions on incidents as the monitor carries them out, called directly."""

from __future__ import annotations

import uuid
from datetime import datetime

from courier.common.db.engine import Database
from courier.common.db.models_incidents import SlaPolicy
from courier.common.events import IncidentAct
from courier.common.incident_actions import Progress
from courier.common.storage import Storage
from courier.common.uow import UnitOfWork
from courier.monitor import actions


async def act(
    db: Database,
    storage: Storage,
    incident_id: uuid.UUID,
    action: str,
    at: datetime,
    by: str,
    text: str = "",
    note_kind: str = "note",
) -> Progress:
    """What the monitor does with a `courier.incident.act` command a person sent at `at`."""
    command = IncidentAct.model_validate(
        {"incident_id": incident_id, "action": action, "by": by, "text": text,
         "note_kind": note_kind, "occurred_at": at}
    )  # fmt: skip
    return await actions.act(command, UnitOfWork(db, storage), SlaPolicy())
