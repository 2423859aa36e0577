"""Files of one feed are imported one at a time, in the order they arrived.

The feed's lock (`UnitOfWork.lock`, a transaction-scoped advisory lock on
PostgreSQL) serialises the work across importer replicas. A handler imports
every file of the feed that arrived up to its own, oldest first, so a redelivered
or late event can never make a newer file land before an older one.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Feed, Import, ReceivedFile
from courier.common.feeds import match_feed


async def enabled_feeds(session: AsyncSession, tenant_id: uuid.UUID) -> list[Feed]:
    return list(
        await session.scalars(
            select(Feed)
            .where(Feed.tenant_id == tenant_id, Feed.enabled.is_(True))
            .order_by(Feed.name)
        )
    )


async def queue_until(
    session: AsyncSession, feed: Feed, feeds: list[Feed], file_id: uuid.UUID
) -> list[ReceivedFile]:
    """Files of `feed` not imported yet that arrived no later than `file_id`, oldest first."""
    target = await session.get(ReceivedFile, file_id)
    if target is None:
        return []
    waiting = await session.scalars(
        select(ReceivedFile)
        .outerjoin(Import, Import.file_id == ReceivedFile.id)
        .where(
            ReceivedFile.tenant_id == target.tenant_id,
            ReceivedFile.area == "inbound",
            Import.id.is_(None),
            or_(
                ReceivedFile.received_at < target.received_at,
                and_(
                    ReceivedFile.received_at == target.received_at,
                    ReceivedFile.id == target.id,
                ),
            ),
        )
        .order_by(ReceivedFile.received_at, ReceivedFile.id)
    )
    rows = list(waiting.unique())
    return [r for r in rows if (m := match_feed(feeds, r.name)) is not None and m.id == feed.id]
