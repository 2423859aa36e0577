"""Only the outbox relay publishes: every event on the bus was first committed in the outbox."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select

from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import Import, Tenant
from courier.common.db.models_incidents import Incident
from courier.common.events import Event
from courier.common.settings import Settings
from courier.gateway import admin
from tests.support.clients import asyncssh_connect
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Corr3ct-Horse-Battery"
# The relay itself, and the places that hand it the bus (a service's runtime, the CLI's
# one-off relay pass and `courier outbox flush`).
RELAY_WIRING = {"libs/common/runtime.py", "libs/cli/context.py", "libs/cli/outbox.py"}


def _publish_uses(path: Path) -> list[int]:
    """Lines of `path` that call or hand out a `.publish` of the bus or its broker."""
    tree = ast.parse(path.read_text(), str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "publish":
            owner = ast.unparse(node.value)
            if "bus" in owner or "broker" in owner:
                lines.append(node.lineno)
    return lines


def test_no_service_code_reaches_the_bus_publish_but_the_relay_wiring() -> None:
    offenders = {}
    for folder in ("libs", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "libs/common/bus.py" or rel in RELAY_WIRING:
                continue
            if lines := _publish_uses(path):
                offenders[rel] = lines
    assert offenders == {}


@pytest.fixture
def publishers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every `Bus.publish` call of the running services: (subject, came from the relay)."""
    calls: list[tuple[str, bool]] = []
    real = Bus.publish

    async def watched(self: Bus, event: Event):  # type: ignore[no-untyped-def]
        relay = any(
            (f.function == "flush" and f.filename.endswith("courier/common/outbox.py"))
            or (f.function == "flush" and f.filename.endswith("libs/common/outbox.py"))
            for f in inspect.stack()
        )
        calls.append((event.subject, relay))
        return await real(self, event)

    monkeypatch.setattr(Bus, "publish", watched)
    return calls


async def test_every_event_of_an_upload_import_and_incident_comes_from_the_relay(
    settings: Settings,
    db: Database,
    tenant: Tenant,
    leave_feed: None,
    publishers: list[tuple[str, bool]],
    tmp_path: Path,
) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    await admin.create_account(
        db, tenant, "acme-payroll", password=PASSWORD,
        keys=[key.export_public_key().decode()], allow=["127.0.0.1/32"],
    )  # fmt: skip
    async with (
        running("importer", settings),
        running("monitor", settings),
        running("notifier", settings),
        running("gateway", settings),
    ):
        conn = await asyncssh_connect(settings.gateway_port, "acme-payroll", PASSWORD,
                                      client_keys=[key])  # fmt: skip
        async with conn, conn.start_sftp_client() as sftp:
            async with sftp.open("/inbound/leave_20261101.csv", "wb") as f:
                await f.write(leave_csv("E1,annual,8,2026-11-01"))
            async with sftp.open("/inbound/holiday.xlsx", "wb") as f:
                await f.write(b"not ours")
            async with sftp.open("/inbound/leave_20261101.csv", "rb") as f:
                await f.read()

        async def outcomes() -> bool:
            async with db.session() as s:
                imports = list(await s.scalars(select(Import)))
                incidents = list(await s.scalars(select(Incident)))
            return len(imports) == 2 and bool(incidents)

        await eventually(outcomes, within=60)

    subjects = {subject for subject, _ in publishers}
    assert {
        "courier.file.received",
        "courier.import.completed",
        "courier.file.rejected",
    } <= subjects
    assert [call for call in publishers if not call[1]] == []
