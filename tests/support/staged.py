"""What a writer staged in the outbox: the events a consumer will see once the relay runs."""

from __future__ import annotations

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import EVENT_TYPES, Event


async def staged(db: Database, subject: str | None = None) -> list[Event]:
    """Staged events in the order they were committed (published or not)."""
    query = select(OutboxEvent).order_by(OutboxEvent.id)
    if subject is not None:
        query = query.where(OutboxEvent.subject == subject)
    async with db.session() as s:
        rows = list(await s.scalars(query))
    return [EVENT_TYPES[r.subject].model_validate(r.payload) for r in rows]
