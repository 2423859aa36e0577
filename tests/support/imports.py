"""What became of the files partners sent: their imports, read as a test waits for them."""

from __future__ import annotations

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile
from tests.support.services import eventually


async def all_imports(db: Database) -> list[Import]:
    async with db.session() as s:
        return list(await s.scalars(select(Import).order_by(Import.received_at)))


async def finished_imports(db: Database, n: int) -> list[Import]:
    """Wait until at least `n` imports exist and every one has finished."""

    async def probe() -> list[Import] | None:
        found = await all_imports(db)
        return found if len(found) >= n and all(i.finished_at for i in found) else None

    return await eventually(probe)


async def received_names(db: Database) -> list[str]:
    """The names of the files announced, once per announcement, sorted."""
    async with db.session() as s:
        return sorted(await s.scalars(select(ReceivedFile.name)))
