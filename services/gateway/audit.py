"""The session audit: one database row per login, transfer, deletion and disconnect.

Lines are buffered and written in one transaction per flush, so hundreds of busy
sessions cost a handful of writes a second rather than one each per event.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from courier.common.db.engine import Database
from courier.common.db.models_gateway import SessionEvent
from courier.common.logging import get_logger
from courier.common.tasks import uninterrupted

log = get_logger(__name__)


@dataclass
class SessionRef:
    """What every audit line of one connection shares."""

    id: str
    peer: str
    username: str | None = None
    tenant: str | None = None


class AuditLog:
    def __init__(self, db: Database, every: float = 0.2) -> None:
        self.db = db
        self.every = every
        self.pending: list[SessionEvent] = []
        self._lock = asyncio.Lock()

    def add(
        self,
        ref: SessionRef,
        kind: str,
        *,
        reason: str | None = None,
        path: str | None = None,
        size: int | None = None,
    ) -> None:
        self.pending.append(
            SessionEvent(
                session=ref.id,
                peer=ref.peer,
                username=ref.username,
                tenant=ref.tenant,
                kind=kind,
                # Clipped to their columns: one over-long line must not hold back the batch.
                reason=reason[:255] if reason else reason,
                path=path[:1024] if path else path,
                bytes=size,
            )
        )

    async def flush(self) -> None:
        """Write what is buffered; a database hiccup keeps the lines for the next flush.

        A cancellation (a client leaving mid-login, a stop) waits for the write: cut
        mid-statement, a SQLite connection keeps the write lock until it is collected.
        """
        await uninterrupted(self._flush())

    async def _flush(self) -> None:
        async with self._lock:
            lines, self.pending = self.pending, []
            if not lines:
                return
            try:
                async with self.db.transaction() as session:
                    session.add_all(lines)
            except Exception as exc:
                log.error("session audit not written yet", lines=len(lines), error=str(exc))
                self.pending[:0] = [_copy(line) for line in lines]

    async def run(self) -> None:
        """Flush every `every` seconds until cancelled; the stop makes the last flush."""
        while True:
            await asyncio.sleep(self.every)
            await self.flush()


def _copy(line: SessionEvent) -> SessionEvent:
    """A fresh instance (the failed session may have attached the old one)."""
    return SessionEvent(
        at=line.at,
        session=line.session,
        peer=line.peer,
        username=line.username,
        tenant=line.tenant,
        kind=line.kind,
        reason=line.reason,
        path=line.path,
        bytes=line.bytes,
    )
