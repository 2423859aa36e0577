"""What "nothing lost, nothing doubled" is counted by after a fault: files received,
imports, audit rows, domain rows and the events staged for them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, text

from courier.common.areas import area_key
from courier.common.db.engine import Database
from courier.common.db.models import Import, ImportRecord, LeaveBalance, ReceivedFile, Tenant
from courier.common.db.models_outbox import OutboxEvent
from courier.common.received import record_file
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.common.uow import lock_key
from tests.support.cluster import stream_messages
from tests.support.services import eventually


@dataclass(frozen=True)
class Tally:
    received: int
    imports: int
    files_imported: int
    finished: int
    audit_rows: int
    balances: int
    completions: int
    unpublished: int


async def tally(db: Database) -> Tally:
    async with db.session() as s:

        async def count(stmt) -> int:  # type: ignore[no-untyped-def]
            return int(await s.scalar(stmt) or 0)

        return Tally(
            received=await count(select(func.count()).select_from(ReceivedFile)),
            imports=await count(select(func.count()).select_from(Import)),
            files_imported=await count(select(func.count(func.distinct(Import.file_id)))),
            finished=await count(
                select(func.count()).select_from(Import).where(Import.finished_at.is_not(None))
            ),
            audit_rows=await count(select(func.count()).select_from(ImportRecord)),
            balances=await count(select(func.count()).select_from(LeaveBalance)),
            completions=await count(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.subject == "courier.import.completed")
            ),
            unpublished=await count(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
            ),
        )


def leave_rows(count: int, *, prefix: str = "E", hours: int = 8) -> bytes:
    """A leave-balance CSV of `count` distinct employees (large files for long imports)."""
    lines = ["employee_id,leave_type,balance_hours,as_of\n"]
    lines += [f"{prefix}{i:07d},annual,{hours + i % 40},2026-11-01\n" for i in range(count)]
    return "".join(lines).encode()


async def receive(db: Database, storage: Storage, tenant: Tenant, name: str, data: bytes) -> None:
    """A file in the tenant's drop area, its row and event committed (as an upload's close)."""
    key = area_key(tenant.slug, "inbound", name)
    await storage.put(key, data)
    await record_file(db, storage, tenant, name, key, source="api")


async def importing(db: Database, feed_id: uuid.UUID) -> int | None:
    """The pid of the service process whose import of `feed_id` is in its transaction (it
    holds the feed's lock), read from its connection's `application_name`."""
    key = lock_key(feed_id)
    async with db.session() as s:
        name = await s.scalar(
            text(
                "SELECT a.application_name FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND l.classid = :hi AND l.objid = :lo AND a.datname = current_database()"
            ),
            {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
        )
    return pid_of(name) if name else None


def pid_of(application_name: str) -> int:
    """A service's connections are named for its instance, `service@host:pid:random`."""
    return int(application_name.rsplit(":", 2)[1])


async def backends_of(db: Database, pid: int) -> list[int]:
    """PostgreSQL backends of this database serving service process `pid`."""
    async with db.session() as s:
        rows = await s.execute(
            text(
                "SELECT pid, application_name FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name LIKE '%@%:%:%'"
            )
        )
        return [backend for backend, name in rows if pid_of(name) == pid]


# The cut-mid-import scenario: an earlier small file sets EARLIER balances, then a large
# file updating them and creating the rest is cut while in its transaction.
ROWS = 150_000
EARLIER = 100


async def wait_all_imported(db: Database, settings: Settings, files: int) -> None:
    """Wait until `files` imports finished and every staged event is published, then
    check each event is on the bus exactly once."""

    async def finished() -> bool:
        return (await tally(db)).finished >= files

    async def relayed() -> bool:
        return (await tally(db)).unpublished == 0

    await eventually(finished, within=180, interval=0.5)
    await eventually(relayed, within=30)
    on_bus = {
        name: await stream_messages([settings.nats_url], f"{settings.nats_namespace}_{name}")
        for name in ("COURIER_FILES", "COURIER_IMPORTS")
    }
    assert on_bus == {"COURIER_FILES": files, "COURIER_IMPORTS": files}


async def assert_large_file_imported_once(db: Database, cut_at: datetime) -> None:
    """The large file is imported once, by an attempt begun after the cut, counted
    against the balances as the earlier file left them: the cut attempt left nothing."""
    counts = await tally(db)
    assert counts.received == counts.imports == counts.files_imported == 2
    assert counts.audit_rows == EARLIER + ROWS
    assert counts.balances == ROWS
    assert counts.completions == 2
    async with db.session() as s:
        big = await s.scalar(select(Import).where(Import.file_name == "leave_2.csv"))
        earlier = {
            b.employee_id: b.balance_hours
            for b in await s.scalars(
                select(LeaveBalance).where(LeaveBalance.employee_id < f"E{EARLIER:07d}")
            )
        }
    assert big is not None
    assert big.started_at > cut_at
    assert (big.status, big.created, big.updated, big.unchanged) == (
        "completed", ROWS - EARLIER, EARLIER, 0,
    )  # fmt: skip
    assert earlier == {f"E{i:07d}": Decimal(8 + i % 40) for i in range(EARLIER)}
