"""A vendor source on a real OpenSSH server, registered for the test tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_sources import Source
from courier.poller.spec import SourceSpec
from tests.support.sshd import Sshd

MakeSource = Callable[..., Awaitable[Source]]


@pytest.fixture
def make_source(db: Database, tenant: Tenant, sshd: Sshd) -> MakeSource:
    async def _make(**overrides: Any) -> Source:
        remote = {
            "host": "127.0.0.1",
            "port": sshd.port,
            "user": sshd.user,
            "private_key": f"file:{sshd.client_key_path}",
            "host_key_sha256": sshd.host_fingerprint(),
            **overrides.pop("remote", {}),
        }
        spec = SourceSpec.model_validate(
            {
                "name": "payroll-vendor",
                "pattern": "leave_*.csv",
                "directory": str(sshd.home),
                "min_age_seconds": 0,
                "interval_seconds": 5,
                "remote": remote,
                **overrides,
            }
        )
        async with db.transaction() as session:
            source = Source(tenant_id=tenant.id, name=spec.name, spec=spec.model_dump(mode="json"))
            session.add(source)
        async with db.session() as session:
            loaded = await session.get(Source, source.id)
            assert loaded is not None
            return loaded

    return _make
