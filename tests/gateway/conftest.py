"""A running gateway and partners' accounts, keys and clients for the gateway tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_gateway import SessionEvent
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import SftpResult, asyncssh_connect, openssh_sftp
from tests.support.paging_fixtures import (  # noqa: F401
    clock,
    expected_feed,
    mailbox,
    paging,
    sns,
    sns_server,
)
from tests.support.services import eventually, running

PASSWORD = "Corr3ct-Horse-Battery"


@dataclass
class Partner:
    """An account and the credentials its owner holds."""

    username: str
    password: str
    key_path: Path
    port: int

    async def connect(self, **kwargs: object) -> asyncssh.SSHClientConnection:
        options: dict[str, object] = {
            "password": self.password,
            "client_keys": [str(self.key_path)],
        }
        options.update(kwargs)
        password = options.pop("password")
        return await asyncssh_connect(self.port, self.username, password, **options)  # type: ignore[arg-type]

    async def openssh(
        self,
        commands: list[str],
        *,
        password: str | bool | None = True,
        key: bool = True,
        bind_address: str | None = None,
    ) -> SftpResult:
        return await openssh_sftp(
            self.port,
            self.username,
            commands,
            password=self.password if password is True else (password or None),
            identity=self.key_path if key else None,
            bind_address=bind_address,
        )


def new_key(path: Path, alg: str = "ssh-ed25519") -> str:
    key = asyncssh.generate_private_key(alg)
    key.write_private_key(path)
    path.chmod(0o600)
    return key.export_public_key().decode()


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"gateway_ban_after_failures": 3, "gateway_state_refresh_seconds": 0.2}
    )


@pytest.fixture
async def gateway(gateway_settings: Settings) -> AsyncIterator[Settings]:
    async with running("gateway", gateway_settings):
        yield gateway_settings


@pytest.fixture
def gateway_clock() -> ManualClock:
    """The clock password and key expiry are judged by, starting at the real time."""
    return ManualClock(datetime.now(UTC))


@pytest.fixture
async def clocked_gateway(
    gateway_settings: Settings, gateway_clock: ManualClock
) -> AsyncIterator[Settings]:
    async with running("gateway", gateway_settings, gateway_clock):
        yield gateway_settings


@pytest.fixture
def make_partner(db: Database, tenant: Tenant, tmp_path: Path, gateway_settings: Settings):  # type: ignore[no-untyped-def]
    async def _make(
        username: str = "acme-payroll", *, of: Tenant | None = None, **options: object
    ) -> Partner:
        key_path = tmp_path / f"{username}_ed25519"
        public = new_key(key_path)
        options.setdefault("allow", ["127.0.0.1/32"])
        options.setdefault("password", PASSWORD)
        await admin.create_account(db, of or tenant, username, keys=[public], **options)  # type: ignore[arg-type]
        # A running gateway picks up new allowlists on its next refresh.
        await asyncio.sleep(gateway_settings.gateway_state_refresh_seconds * 2)
        return Partner(username, PASSWORD, key_path, gateway_settings.gateway_port)

    return _make


@pytest.fixture
async def partner(make_partner) -> Partner:  # type: ignore[no-untyped-def]
    return await make_partner()


async def audit_lines(db: Database, kind: str | None = None) -> list[SessionEvent]:
    async with db.session() as s:
        query = select(SessionEvent).order_by(SessionEvent.id)
        if kind:
            query = query.where(SessionEvent.kind == kind)
        return list(await s.scalars(query))


async def audit_soon(db: Database, kind: str, n: int = 1) -> list[SessionEvent]:
    """The audit is written in batches: wait for `n` lines of `kind`."""

    async def probe() -> list[SessionEvent] | None:
        lines = await audit_lines(db, kind)
        return lines if len(lines) >= n else None

    return await eventually(probe)
