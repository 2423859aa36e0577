"""What operators see of a running gateway: expiry alerts on the bus, sessions in the console."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount, Tenant
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import ALERT_RAISED, AlertRaised, FileDownloaded
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.gateway.conftest import Partner
from tests.support.console import api_client, make_token
from tests.support.services import eventually, running


async def test_running_gateway_raises_password_expiring_alerts(
    partner: Partner, gateway_settings: Settings, db: Database, bus: Bus
) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(SftpAccount).values(password_expires_at=datetime.now(UTC) + timedelta(days=2))
        )
    settings = gateway_settings.model_copy(update={"gateway_password_check_seconds": 0.5})
    js = bus.broker.connection.jetstream()

    async def alert() -> AlertRaised | None:
        try:
            msg = await js.get_last_msg(bus.stream("COURIER_ALERTS"), bus.subject(ALERT_RAISED))
        except Exception:
            return None
        return AlertRaised.model_validate(json.loads(msg.data))

    async with running("gateway", settings):
        raised = await eventually(alert)
        await asyncio.sleep(settings.gateway_password_check_seconds * 3)  # more checks
    assert raised.kind == "password_expiring"
    assert raised.tenant == "acme" and raised.details["username"] == "acme-payroll"
    async with db.session() as s:
        staged = [
            AlertRaised.model_validate(p) for p in await s.scalars(select(OutboxEvent.payload))
        ]
    assert [a.event_id for a in staged] == [raised.event_id]  # one reminder, however many checks


@pytest.fixture
async def console(gateway_settings: Settings):  # type: ignore[no-untyped-def]
    async with running("console", gateway_settings):
        yield f"http://127.0.0.1:{gateway_settings.console_port}"


async def test_console_lists_sessions_with_outcome_and_bytes(
    partner: Partner, gateway: Settings, console: str, db: Database
) -> None:
    async with (
        await partner.connect() as conn,
        conn.start_sftp_client() as sftp,
        sftp.open("/inbound/leave.csv", "wb") as f,
    ):
        await f.write(b"x" * 1234)
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do
        await partner.connect(password="Wrong-Password-123")

    token = await make_token(db, "support")
    async with api_client(console, token) as http:

        async def both() -> list | None:  # type: ignore[type-arg]
            found = (await http.get("/api/gateway/sessions")).json()
            done = [
                s for s in found if s["outcome"] == "succeeded" and s["last_at"] != s["started_at"]
            ]
            return found if len(found) == 2 and done else None

        failed, ok = await eventually(both)
        assert (failed["outcome"], failed["failure"]) == ("failed", "password")
        assert (ok["username"], ok["tenant"], ok["uploads"], ok["bytes_in"]) == (
            "acme-payroll", "acme", 1, 1234,
        )  # fmt: skip
        detail = (await http.get(f"/api/gateway/sessions/{ok['session']}")).json()
        assert [e["kind"] for e in detail["events"]] == ["login_succeeded", "upload", "disconnect"]
        assert (await http.get("/api/gateway/sessions/nope")).status_code == 404


async def test_a_whole_download_is_announced_and_a_partial_read_is_not(
    partner: Partner, gateway: Settings, bus: Bus, storage: Storage, tenant: Tenant
) -> None:
    await storage.put(f"tenants/{tenant.slug}/outbound/timesheets.csv", b"x" * 100_000)
    seen: list[FileDownloaded] = []

    async def on_download(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(FileDownloaded.model_validate(json.loads(msg.data)))

    sub = await bus.broker.connection.subscribe(
        bus.subject("courier.file.downloaded"), cb=on_download
    )
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/outbound/timesheets.csv", "rb") as f:
            assert len(await f.read(1000)) == 1000  # a peek, not a download
        async with sftp.open("/outbound/timesheets.csv", "rb") as f:
            assert len(await f.read()) == 100_000

    async def announced() -> list[FileDownloaded]:
        return seen

    await eventually(announced)
    await asyncio.sleep(0.5)  # time for a second (wrong) announcement to show up
    await sub.unsubscribe()
    [event] = seen
    assert (event.path, event.size, event.username, event.tenant) == (
        "/outbound/timesheets.csv", 100_000, partner.username, tenant.slug,
    )  # fmt: skip
