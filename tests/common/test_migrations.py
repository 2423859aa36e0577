"""Upgrading to the outbox-only bus loses no file: what was recorded but never announced is
staged for the relay by the migration."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.migrate import alembic_config
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import FileReceived

TENANTS = sa.table(
    "tenants", sa.column("id", sa.Uuid), sa.column("slug", sa.String), sa.column("name", sa.String),
    sa.column("timezone", sa.String), sa.column("created_at", sa.DateTime(timezone=True)),
)  # fmt: skip
FILES = sa.table(
    "received_files", sa.column("id", sa.Uuid), sa.column("tenant_id", sa.Uuid),
    sa.column("area", sa.String), sa.column("name", sa.String),
    sa.column("storage_key", sa.String), sa.column("inbound_key", sa.String),
    sa.column("size", sa.BigInteger), sa.column("sha256", sa.String),
    sa.column("source", sa.String), sa.column("account", sa.String),
    sa.column("received_at", sa.DateTime(timezone=True)),
    sa.column("announced_at", sa.DateTime(timezone=True)),
)  # fmt: skip


async def test_files_never_announced_before_the_upgrade_are_staged_by_it(database_url: str) -> None:
    cfg = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, cfg, "0012")
    tenant, waiting, sent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    db = Database(database_url)
    try:
        async with db.transaction() as s:
            acme = {"id": tenant, "slug": "acme", "name": "Acme", "timezone": "UTC"}
            await s.execute(TENANTS.insert().values(**acme, created_at=now))
            for file_id, announced in ((waiting, None), (sent, now)):
                row = {
                    "id": file_id, "tenant_id": tenant, "area": "inbound",
                    "name": f"leave_{file_id}.csv", "inbound_key": None,
                    "storage_key": f"tenants/acme/received/{file_id}", "size": 10,
                    "sha256": "ab" * 32, "source": "gateway", "account": "acme-payroll",
                    "received_at": now, "announced_at": announced,
                }  # fmt: skip
                await s.execute(FILES.insert().values(**row))
        await db.dispose()
        await asyncio.to_thread(command.upgrade, cfg, "heads")
        async with db.session() as s:
            [row] = list(await s.scalars(select(OutboxEvent)))
    finally:
        await db.dispose()
    event = FileReceived.model_validate(row.payload)
    assert (row.subject, event.file_id, event.tenant, event.account) == (
        "courier.file.received", waiting, "acme", "acme-payroll",
    )  # fmt: skip
    # The same id the gateway would have used: a late publish of the old way dedupes.
    assert row.msg_id == event.msg_id()


def test_migrations_form_one_line() -> None:
    """One head: a deployment upgrades in one known order, and a downgrade is defined."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads
