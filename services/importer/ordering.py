"""Files of one feed are imported one at a time, in the order they arrived.

The feed's lock (`UnitOfWork.lock`, a transaction-scoped advisory lock on
PostgreSQL) serialises the work across importer replicas. A handler imports
every file of the feed that arrived up to its own, oldest first, so a redelivered
or late event can never make a newer file land before an older one.
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
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
    """Files of `feed` not imported yet that arrived no later than `file_id`, oldest first.

    One query: the file's own arrival is read by a subquery (none if it is unknown)."""
    target = select(ReceivedFile.received_at).where(ReceivedFile.id == file_id).scalar_subquery()
    tenant = select(ReceivedFile.tenant_id).where(ReceivedFile.id == file_id).scalar_subquery()
    waiting = await session.scalars(
        select(ReceivedFile)
        .outerjoin(Import, Import.file_id == ReceivedFile.id)
        .where(
            ReceivedFile.tenant_id == tenant,
            ReceivedFile.area == "inbound",
            Import.id.is_(None),
            or_(ReceivedFile.received_at < target, ReceivedFile.id == file_id),
        )
        .order_by(ReceivedFile.received_at, ReceivedFile.id)
    )
    rows = list(waiting.unique())
    return [r for r in rows if (m := match_feed(feeds, r.name)) is not None and m.id == feed.id]
