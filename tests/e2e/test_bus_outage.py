"""A partner's upload while NATS is down: the close succeeds, and the file is imported once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select

from courier.common.db.engine import Database
from courier.common.db.models import Import, ImportRecord, ReceivedFile, Tenant
from courier.common.db.models_outbox import OutboxEvent
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.fixtures_data import leave_csv
from tests.support.infra import StoppableNats
from tests.support.services import eventually, running

PASSWORD = "Corr3ct-Horse-Battery"


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[StoppableNats]:
    server = StoppableNats(tmp_path / "jetstream").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.skipif(not openssh_available(), reason="OpenSSH sftp/sshpass not installed")
async def test_upload_during_a_bus_outage_is_committed_then_imported_exactly_once(
    settings: Settings,
    db: Database,
    tenant: Tenant,
    leave_feed: None,
    nats: StoppableNats,
    tmp_path: Path,
) -> None:
    key = tmp_path / "partner_ed25519"
    private = asyncssh.generate_private_key("ssh-ed25519")
    private.write_private_key(key)
    key.chmod(0o600)
    await admin.create_account(
        db, tenant, "acme-payroll", password=PASSWORD,
        keys=[private.export_public_key().decode()], allow=["127.0.0.1/32"],
    )  # fmt: skip
    local = tmp_path / "leave_20261101.csv"
    local.write_bytes(leave_csv("E1,annual,8,2026-11-01", "E2,sick,4,2026-11-01"))
    own = settings.model_copy(update={"nats_url": nats.url, "outbox_relay_seconds": 0.5})

    async with running("importer", own), running("gateway", own):
        nats.stop()
        result = await openssh_sftp(
            own.gateway_port, "acme-payroll", [f"put {local} /inbound/{local.name}"],
            password=PASSWORD, identity=key,
        )  # fmt: skip
        # The partner's close answered: the file is durable, its row and event committed.
        assert result.returncode == 0 and "Failure" not in result.stderr, result.stderr
        async with db.session() as s:
            [row] = list(await s.scalars(select(ReceivedFile)))
            [pending] = list(await s.scalars(select(OutboxEvent)))
        assert (row.name, row.source, row.account) == (local.name, "gateway", "acme-payroll")
        assert pending.subject == "courier.file.received" and pending.published_at is None
        assert pending.payload["file_id"] == str(row.id)

        nats.start()

        async def imported() -> Import | None:
            async with db.session() as s:
                return await s.scalar(select(Import).where(Import.finished_at.is_not(None)))

        imp = await eventually(imported, within=60)
        # Both services reconnected by themselves; let a doubled delivery show up if any.
        async with db.session() as s:
            sent = await s.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(
                    OutboxEvent.subject == "courier.import.completed",
                    OutboxEvent.published_at.is_not(None),
                )
            )
        assert sent == 1 or await eventually(lambda: _published_completion(db), within=30)

    assert (imp.file_name, imp.status, imp.created) == (local.name, "completed", 2)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Import)) == 1
        assert await s.scalar(select(func.count()).select_from(ImportRecord)) == 2
        published = await s.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
    assert published == 0  # every staged event reached the bus once it was back


async def _published_completion(db: Database) -> bool:
    async with db.session() as s:
        return bool(
            await s.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(
                    OutboxEvent.subject == "courier.import.completed",
                    OutboxEvent.published_at.is_not(None),
                )
            )
        )
