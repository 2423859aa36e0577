"""On-call sees what waits in the outbox, and why, and can push it out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from courier.cli.main import app
from courier.common import outbox
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.events import AlertRaised, Event
from courier.common.settings import Settings, get_settings
from tests.support.services import eventually


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("COURIER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COURIER_NATS_URL", settings.nats_url)
    monkeypatch.setenv("COURIER_NATS_NAMESPACE", settings.nats_namespace)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_pending_shows_the_waiting_event_and_flush_publishes_it(
    cli: CliRunner, db: Database, bus: Bus
) -> None:
    alert = AlertRaised(kind="export_undeliverable", cause_key="x", summary="not delivered")

    async def bus_down(event: Event) -> None:
        raise ConnectionError("nats: no servers available for connection")

    async with db.transaction() as s:
        outbox.stage(s, alert)
    assert await outbox.flush(db, bus_down) == 0

    shown = await asyncio.to_thread(cli.invoke, app, ["outbox", "pending", "--json"])
    assert shown.exit_code == 0, shown.output
    [waiting] = json.loads(shown.output)
    assert waiting["subject"] == "courier.alert.raised" and waiting["attempts"] == 1
    assert "no servers available" in waiting["last_error"]

    got: list[AlertRaised] = []

    async def on_alert(msg) -> None:  # type: ignore[no-untyped-def]
        got.append(AlertRaised.model_validate(json.loads(msg.data)))

    sub = await bus.broker.connection.subscribe(bus.subject("courier.alert.raised"), cb=on_alert)
    flushed = await asyncio.to_thread(cli.invoke, app, ["outbox", "flush"])
    assert flushed.exit_code == 0, flushed.output
    assert "published 1; 0 still waiting" in flushed.output

    async def arrived() -> list[AlertRaised]:
        return got

    [received] = await eventually(arrived)
    await sub.unsubscribe()
    assert received.event_id == alert.event_id
    empty = await asyncio.to_thread(cli.invoke, app, ["outbox", "pending"])
    assert "nothing waiting" in empty.output
