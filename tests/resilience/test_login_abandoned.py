"""A slow database during logins: clients that give up while the gateway is still reading
their account are not failed logins, so the partner's address is not banned for them.

Under load (bench/load.py), logins waited on a starved connection pool, clients timed
out, and each was scored as an `unknown_user` failure: five of them banned the
partner's address for an hour after the database had recovered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import func, select, text

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_gateway import SessionEvent
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import asyncssh_connect
from tests.support.services import running

pytestmark = pytest.mark.timeout(120)

PASSWORD = "Corr3ct-Horse-Battery-Staple"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_logins_abandoned_while_the_account_is_read_are_not_scored(
    settings: Settings, db: Database, tenant: Tenant, tmp_path: Path
) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    await admin.create_account(
        db,
        tenant,
        "acme-payroll",
        password=PASSWORD,
        keys=[key.export_public_key().decode()],
        allow=["127.0.0.1/32"],
    )
    strict = settings.model_copy(update={"gateway_ban_after_failures": 2})
    async with running("gateway", strict):
        # The accounts table is locked: the gateway's read of the account waits.
        async with db.transaction() as blocker:
            await blocker.execute(text("LOCK TABLE sftp_accounts IN ACCESS EXCLUSIVE MODE"))
            for _ in range(3):
                with pytest.raises((asyncssh.Error, OSError, asyncio.TimeoutError)):
                    conn = await asyncssh_connect(
                        strict.gateway_port,
                        "acme-payroll",
                        PASSWORD,
                        client_keys=[key],
                        login_timeout=1,
                    )
                    conn.close()
        await asyncio.sleep(0.5)  # the gateway's handling of the closed connections

        # Once the database answers, the partner logs in: its address was not banned.
        async with (
            await asyncssh_connect(
                strict.gateway_port, "acme-payroll", PASSWORD, client_keys=[key]
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            assert "inbound" in await sftp.listdir("/")
    async with db.session() as session:
        failed = await session.scalar(
            select(func.count())
            .select_from(SessionEvent)
            .where(SessionEvent.kind.in_(("login_failed", "banned")))
        )
    assert failed == 0
