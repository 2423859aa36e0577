"""The node leading the files' stream is SIGKILLed while a partner uploads, and later comes
back: every file is imported exactly once, and no service needed a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Import, Tenant
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import asyncssh_connect
from tests.support.cluster import (
    declare_streams,
    fully_replicated,
    stream_messages,
    three_nodes,
)
from tests.support.deployed import deployment
from tests.support.exactly_once import tally
from tests.support.fixtures_data import leave_csv
from tests.support.infra import wait_port
from tests.support.outages import service_env
from tests.support.services import eventually

PASSWORD = "Corr3ct-Horse-Battery"
FILES = 24
ROWS = 3


def _file(i: int) -> bytes:
    return leave_csv(*(f"E{i:03d}{j},annual,{8 + j},2026-11-01" for j in range(ROWS)))


async def _consumer_settled(urls: list[str], stream: str, durable: str) -> bool:
    """The importer's consumer has taken every message and holds none unacknowledged."""
    nc = await nats.connect(urls, connect_timeout=2, max_reconnect_attempts=1)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
        return info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


@pytest.mark.timeout(240)
async def test_uploads_across_the_loss_of_the_streams_leader_are_imported_once(
    settings: Settings, db: Database, tenant: Tenant, leave_feed: None, tmp_path: Path
) -> None:
    await admin.create_account(
        db, tenant, "acme-payroll", password=PASSWORD, auth_policy="password",
        allow=["127.0.0.1/32"],
    )  # fmt: skip
    with three_nodes(tmp_path / "nats") as cluster:
        own = settings.model_copy(
            update={"nats_url": cluster.url, "nats_replicas": 3, "outbox_relay_seconds": 0.5}
        )
        files_stream = f"{own.nats_namespace}_COURIER_FILES"
        await declare_streams(own)
        await fully_replicated(cluster.urls, files_stream)
        with deployment(tmp_path / "services", service_env(own)) as stack:
            gateway = stack.add("gateway", start=False)
            importer = stack.add("importer", start=False)
            await asyncio.gather(
                asyncio.to_thread(gateway.start), asyncio.to_thread(importer.start)
            )
            pids = {gateway.name: gateway.pid, importer.name: importer.pid}

            lost = None
            async with await asyncssh_connect(
                own.gateway_port, "acme-payroll", PASSWORD
            ) as conn, conn.start_sftp_client() as sftp:  # fmt: skip
                for i in range(FILES):
                    if i == FILES // 3:
                        # Mid-stream: the node leading the files' stream vanishes.
                        lost = await fully_replicated(cluster.urls, files_stream)
                        cluster.nodes[lost].kill()
                    if i == 2 * FILES // 3:
                        assert lost is not None
                        back = cluster.nodes[lost].start()
                        await asyncio.to_thread(wait_port, "127.0.0.1", back.port)
                    async with sftp.open(f"/inbound/leave_{i:03d}.csv", "wb") as f:
                        await f.write(_file(i))
                    await asyncio.sleep(0.1)

            async def all_finished() -> bool:
                return (await tally(db)).finished >= FILES

            await eventually(all_finished, within=120, interval=0.5)
            durable = f"{own.nats_namespace}_importer"

            async def settled() -> bool:
                try:
                    return await _consumer_settled(cluster.urls, files_stream, durable)
                except Exception:
                    return False

            await eventually(settled, within=60, interval=0.5)

            async def relayed() -> bool:
                return (await tally(db)).unpublished == 0

            await eventually(relayed, within=60, interval=0.5)
            # On the bus, each file's events once: a publish retried through the election
            # was deduplicated by its message id.
            on_bus = {
                name: await stream_messages(cluster.urls, f"{own.nats_namespace}_{name}")
                for name in ("COURIER_FILES", "COURIER_IMPORTS")
            }
            assert on_bus == {"COURIER_FILES": FILES, "COURIER_IMPORTS": FILES}
            # Services reconnected on their own: the same processes, never restarted.
            for service in (gateway, importer):
                assert service.alive(), service.log_tail()
                assert (service.pid, service.starts) == (pids[service.name], 1)

    counts = await tally(db)
    assert counts.received == FILES
    assert counts.imports == counts.files_imported == FILES  # no file imported twice
    assert counts.audit_rows == counts.balances == FILES * ROWS
    assert counts.completions == FILES
    async with db.session() as s:
        statuses = list(await s.scalars(select(Import.status)))
    assert statuses == ["completed"] * FILES
