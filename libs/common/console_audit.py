"""The console audit: who changed what, or downloaded which file, and when.

Written in the transaction of the change it records, so an action and its audit line
commit together; the CLI writes here too, so every way in leaves the same trail.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models_console import ConsoleAuditEntry


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    role: str | None = None,
    tenant_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: object | None = None,
    summary: str = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> ConsoleAuditEntry:
    entry = ConsoleAuditEntry(
        id=uuid.uuid4(),
        actor=actor,
        role=role,
        tenant_id=tenant_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        summary=summary,
        details=details or {},
        ip=ip,
    )
    session.add(entry)
    return entry
