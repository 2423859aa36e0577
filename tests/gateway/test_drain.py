"""A drained gateway replica: partners mid-transfer finish, new ones go elsewhere.

The drain is asked for as Kubernetes' preStop hook does, by `courier gateway drain`
in its own process, and watched through the health port the kubelet probes.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from courier.common.db.engine import Database
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import FileReceived
from courier.common.settings import Settings
from courier.gateway.drain import Drain
from courier.gateway.server import GatewayContext
from tests.gateway.conftest import Partner, audit_lines, audit_soon
from tests.support.cli import cli_env, courier_run
from tests.support.imports import received_names
from tests.support.infra import free_port
from tests.support.services import eventually, running


def _draining(settings: Settings, within: float) -> Settings:
    return settings.model_copy(update={"health_port": free_port(), "gateway_drain_seconds": within})


async def _readiness(port: int) -> httpx.Response:
    """GET /readyz once the health server listens."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for _ in range(100):
            try:
                return await http.get("/readyz")
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listening on {port}")


async def _not_ready(port: int) -> httpx.Response | None:
    answer = await _readiness(port)
    return answer if answer.status_code == 503 else None


async def _published(db: Database, name: str) -> bool:
    """The file's `courier.file.received` has left the outbox for the bus."""
    async with db.session() as s:
        rows = await s.scalars(
            select(OutboxEvent).where(
                OutboxEvent.subject == FileReceived.subject,
                OutboxEvent.published_at.is_not(None),
            )
        )
        return any(r.payload["name"] == name for r in rows)


async def test_an_upload_in_progress_at_the_drain_completes_and_is_announced_while_new_partners_are_refused(  # noqa: E501
    partner: Partner, gateway_settings: Settings, db: Database
) -> None:
    settings = _draining(gateway_settings, within=30)
    port = settings.health_port
    async with running("gateway", settings):
        assert (await _readiness(port)).status_code == 200
        conn = await partner.connect()
        sftp = await conn.start_sftp_client()
        upload = await sftp.open("/inbound/leave_1.csv", "wb")
        await upload.write(b"employee,days\n")

        prestop = asyncio.create_task(
            courier_run(cli_env(settings, COURIER_HEALTH_PORT=str(port)), "gateway", "drain")
        )
        ready = await eventually(lambda: _not_ready(port))
        assert ready.json()["checks"]["accepting_sessions"] is False

        # A partner arriving now is refused at once: its client tries another replica.
        late = await partner.openssh(["ls"])
        assert late.returncode != 0 and "Connection refused" in late.stderr, late.stderr

        # The partner already in finishes the file; the drain waits for them.
        await upload.write(b"E1,12\n")
        await upload.close()
        assert not prestop.done()
        sftp.exit()
        conn.close()

        ran = await asyncio.wait_for(prestop, 20)
        assert ran.code == 0, ran.stderr
        assert "drained: no session left" in ran.stdout
        assert await received_names(db) == ["leave_1.csv"]
        assert await eventually(lambda: _published(db, "leave_1.csv"))
        upload_line = (await audit_soon(db, "upload"))[0]
        assert (upload_line.path, upload_line.bytes) == ("/inbound/leave_1.csv", 20)
        # The partner left on their own: no disconnect was forced on them.
        assert (await audit_soon(db, "disconnect"))[0].reason is None


async def test_sessions_still_open_at_the_drain_deadline_are_disconnected_and_audited(
    partner: Partner, gateway_settings: Settings, db: Database
) -> None:
    settings = _draining(gateway_settings, within=1.5)
    port = settings.health_port
    async with running("gateway", settings):
        await _readiness(port)
        conn = await partner.connect()
        try:
            sftp = await conn.start_sftp_client()
            async with sftp.open("/inbound/leave_2.csv", "wb") as f:
                await f.write(b"a,b\n")
            started = time.monotonic()
            ran = await courier_run(
                cli_env(settings, COURIER_HEALTH_PORT=str(port)), "gateway", "drain"
            )
            took = time.monotonic() - started
            assert ran.code == 0, ran.stderr
            assert "draining: 1 sessions open" in ran.stdout
            assert took >= 1.5, took  # it waited out the drain period for the open session
            await asyncio.wait_for(conn.wait_closed(), 5)  # cut off by the gateway
            disconnect = (await audit_soon(db, "disconnect"))[0]
            assert (disconnect.reason, disconnect.bytes) == ("gateway stopping", 4)
            # Still running, and still not taking traffic, until the pod is stopped.
            assert (await _readiness(port)).status_code == 503
        finally:
            conn.close()
    assert [line.kind for line in await audit_lines(db)] == [
        "login_succeeded",
        "upload",
        "disconnect",
    ]


async def test_a_drain_is_refused_to_anyone_but_the_gateways_own_host(
    gateway_settings: Settings, db: Database
) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    try:
        ctx = GatewayContext(gateway_settings, db, None, None, None, None)  # type: ignore[arg-type]
        drain = Drain(ctx, server, within=5)
        app = Starlette(routes=[drain.route()])
        outside = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=outside, base_url="http://gateway") as http:
            refused = await http.post("/drain")
            looked = await http.get("/drain")
        assert refused.status_code == 403
        assert looked.json() == {
            "draining": False, "drained": False, "sessions": 0, "seconds_left": None,
        }  # fmt: skip
        assert server.is_serving() and await drain.accepting()
    finally:
        server.close()
