"""Fixtures shared by the monitor and notifier tests (imported by their conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from courier.cli import provision
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Tenant
from courier.common.settings import Settings
from courier.notifier.rota import Rota, save_rota
from tests.support.paging import SNS_REGION, Mailbox, Sns, moto_sns, smtp_server

# Winter, so Europe/London is UTC and the expected times read the same in both.
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ANA, BEN, CAI = "+447700900001", "+447700900002", "+447700900003"
CONTACT = "payroll-it@acme.example"

ROTA = {
    "timezone": "Europe/London",
    "escalate_after_minutes": 15,
    "people": [
        {"name": "Ana", "phone": ANA, "email": "ana@ops.example"},
        {"name": "Ben", "phone": BEN},
        {"name": "Cai", "phone": CAI},
    ],
    "rotations": [
        {"name": "primary", "start": "2026-11-30T09:00", "shift_days": 7, "people": ["Ana", "Cai"]},
        {"name": "secondary", "start": "2026-11-30T09:00", "shift_days": 7, "people": ["Ben"]},
    ],
}


@pytest.fixture(scope="session")
def sns_server() -> Iterator[Sns]:
    with moto_sns() as sns:
        yield sns


@pytest.fixture
def sns(sns_server: Sns, monkeypatch: pytest.MonkeyPatch) -> Sns:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    sns_server.reset()
    return sns_server


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    with smtp_server(tmp_path) as box:
        yield box


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def paging(settings: Settings, sns: Sns, mailbox: Mailbox) -> Settings:
    return settings.model_copy(
        update={
            "sms_provider": "sns",
            "sns_region": SNS_REGION,
            "sns_endpoint_url": sns.url,
            "smtp_url": SecretStr(mailbox.url),
            "smtp_ca_file": mailbox.ca_file,
            "smtp_from": "courier@ops.example",
            "console_base_url": "https://console.example",
            "monitor_tick_seconds": 0.1,
            "notifier_tick_seconds": 0.1,
            # Services in these tests heartbeat by the test's clock; only the heartbeat
            # test wants to see one go quiet.
            "heartbeat_timeout_seconds": 10**9,
        }
    )


@pytest.fixture
async def rota(db: Database) -> Rota:
    parsed = Rota.model_validate(ROTA)
    async with db.transaction() as s:
        await save_rota(s, parsed)
    return parsed


@pytest.fixture
async def expected_feed(db: Database, tenant: Tenant) -> Feed:
    spec = {
        "name": "leave-balances",
        "kind": "leave_balances",
        "pattern": "leave_{yyyyMMdd}.csv",
        "expect": {"cron": "0 9 * * *", "timezone": "Europe/London", "window_minutes": 120},
        "contacts": [{"name": "Payroll IT", "email": CONTACT}],
    }
    return await provision.upsert_feed(
        db, tenant, spec["name"], spec["kind"], spec["pattern"], spec
    )
