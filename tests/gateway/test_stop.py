"""A gateway stop: every audit line written, the database left unlocked, and soon."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from sqlalchemy import event
from sqlalchemy.engine import make_url

from courier.common.db.engine import Database, is_sqlite
from courier.common.settings import Settings
from courier.gateway.audit import AuditLog, SessionRef
from tests.gateway.conftest import Partner, audit_lines
from tests.support.services import running


async def test_a_stop_writes_the_pending_audit_of_an_open_session_and_returns_promptly(
    partner: Partner, gateway_settings: Settings, db: Database
) -> None:
    # Batches far apart: everything the session does is still unwritten at the stop.
    settings = gateway_settings.model_copy(update={"gateway_audit_flush_seconds": 600})
    async with running("gateway", settings):
        conn = await partner.connect()
        sftp = await conn.start_sftp_client()
        async with sftp.open("/inbound/leave.csv", "wb") as f:
            await f.write(b"a,b\n")
        assert await audit_lines(db) == []
        stop_at = time.monotonic()
    took = time.monotonic() - stop_at
    try:
        assert took < 5, f"the stop took {took:.1f} s"
        lines = await audit_lines(db)
        assert [(line.kind, line.path) for line in lines] == [
            ("login_succeeded", None),
            ("upload", "/inbound/leave.csv"),
            ("disconnect", None),
        ]
        assert lines[-1].reason == "gateway stopping" and lines[-1].bytes == 4
        await asyncio.wait_for(conn.wait_closed(), 5)  # the partner was disconnected
    finally:
        sftp.exit()
        conn.close()


async def test_a_flush_cancelled_mid_statement_still_writes_and_leaves_no_lock(
    db: Database, database_url: str
) -> None:
    audit = AuditLog(db)
    audit.add(SessionRef("s1", "127.0.0.1", "acme-payroll", "acme"), "login_succeeded")
    flushing = asyncio.create_task(audit.flush())

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _cut(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        # A client leaving mid-login cancels its flush while the INSERT runs.
        if statement.startswith("INSERT INTO gateway_session_events"):
            asyncio.get_running_loop().call_soon(flushing.cancel)

    await asyncio.wait({flushing})
    assert flushing.cancelled()
    assert [line.kind for line in await audit_lines(db)] == ["login_succeeded"]
    if is_sqlite(database_url):
        # Another writer gets the write lock at once: none was left behind.
        other = sqlite3.connect(make_url(database_url).database or "", timeout=1)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
