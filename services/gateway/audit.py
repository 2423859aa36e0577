"""The session audit: one database row per login, transfer, deletion and disconnect."""

from __future__ import annotations

from dataclasses import dataclass

from courier.common.db.engine import Database
from courier.common.db.models_gateway import SessionEvent
from courier.common.logging import get_logger

log = get_logger(__name__)


@dataclass
class SessionRef:
    """What every audit line of one connection shares."""

    id: str
    peer: str
    username: str | None = None
    tenant: str | None = None


async def record(
    db: Database,
    ref: SessionRef,
    kind: str,
    *,
    reason: str | None = None,
    path: str | None = None,
    size: int | None = None,
) -> None:
    """Write one audit line; a database hiccup is logged, never fails the partner's transfer."""
    try:
        async with db.transaction() as session:
            session.add(
                SessionEvent(
                    session=ref.id,
                    peer=ref.peer,
                    username=ref.username,
                    tenant=ref.tenant,
                    kind=kind,
                    reason=reason,
                    path=path,
                    bytes=size,
                )
            )
    except Exception as exc:
        log.error("session audit not written", session=ref.id, kind=kind, error=str(exc))
