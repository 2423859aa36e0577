"""Files of one feed are imported one at a time, in the order they arrived.

A lock per feed serialises the work across importer replicas (a PostgreSQL
advisory lock, released if the holder dies; on SQLite, which has one writer
anyway, a lock in the process). Whoever holds it imports every file of the feed
that arrived up to its own, oldest first, so a redelivered or late event can
never make a newer file land before an older one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import and_, or_, select, text

from courier.common.db.engine import Database, is_sqlite
from courier.common.db.models import Feed, Import, ReceivedFile
from courier.importer.patterns import matches

_local_locks: defaultdict[uuid.UUID, asyncio.Lock] = defaultdict(asyncio.Lock)


def lock_key(feed_id: uuid.UUID) -> int:
    return int.from_bytes(feed_id.bytes[:8], "big", signed=True)


@asynccontextmanager
async def feed_lock(db: Database, feed_id: uuid.UUID) -> AsyncIterator[None]:
    if is_sqlite(db.url):
        async with _local_locks[feed_id]:
            yield
        return
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(feed_id)})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(feed_id)})
            await conn.commit()


def match_feed(feeds: list[Feed], name: str) -> Feed | None:
    """The first enabled feed (by name) whose pattern takes the file name."""
    for feed in feeds:
        if matches(feed.pattern, name):
            return feed
    return None


async def enabled_feeds(db: Database, tenant_id: uuid.UUID) -> list[Feed]:
    async with db.session() as session:
        return list(
            (
                await session.scalars(
                    select(Feed)
                    .where(Feed.tenant_id == tenant_id, Feed.enabled.is_(True))
                    .order_by(Feed.name)
                )
            ).all()
        )


async def queue_until(
    db: Database, feed: Feed, feeds: list[Feed], file_id: uuid.UUID
) -> list[ReceivedFile]:
    """Files of `feed` not imported yet that arrived no later than `file_id`, oldest first."""
    async with db.session() as session:
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
