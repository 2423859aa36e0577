"""What applying one file means, whichever path computes it (row-wise or bulk)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import ImportRecord
from courier.common.events import ImportCounts
from courier.importer.rows import Layout, Row
from courier.importer.spec import FeedSpec


@dataclass
class Context:
    tenant_id: uuid.UUID
    feed_id: uuid.UUID
    import_id: uuid.UUID
    spec: FeedSpec
    layout: Layout
    apply: bool  # False: compute and audit the change set only (held for approval)
    guarded: bool = True  # False once a person approved: the full-sync guard is passed


@dataclass
class Outcome:
    counts: ImportCounts = field(default_factory=ImportCounts)
    # Set when nothing was applied: why (rows errored under reject_file, or the guard held it).
    rejected: str | None = None
    held: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    async def __call__(
        self, session: AsyncSession, ctx: Context, rows: Iterator[Row]
    ) -> Outcome: ...


def render(value: Any) -> str | None:
    """How values appear in the audit (the same text PostgreSQL gives for the column)."""
    return None if value is None else str(value)


def guard_reason(ctx: Context, deletes: int, existing: int) -> str | None:
    guard = ctx.spec.full_sync_guard
    if not ctx.guarded or ctx.spec.mode != "full_sync" or existing < guard.min_records:
        return None
    if deletes > guard.max_delete_share * existing:
        return (
            f"full sync would delete {deletes} of {existing} records "
            f"(more than {guard.max_delete_share:.0%}); held for approval"
        )
    return None


def reject_reason(errored: int) -> str:
    return f"{errored} row(s) with errors and the feed's on_row_error is reject_file"


async def fingerprint(session: AsyncSession, import_id: uuid.UUID) -> str:
    """A digest of an import's change set, to tell whether a recomputed one is the same."""
    digest = hashlib.sha256()
    result = await session.stream(
        select(
            ImportRecord.row_number,
            ImportRecord.record_key,
            ImportRecord.action,
            ImportRecord.changes,
            ImportRecord.error,
        )
        .where(ImportRecord.import_id == import_id)
        .order_by(ImportRecord.row_number, ImportRecord.record_key)
    )
    async for row in result:
        digest.update(json.dumps(list(row), sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()
