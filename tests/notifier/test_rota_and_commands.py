"""The rota answers who is on call; the CLI and the console API act on incidents."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from courier.cli.main import app
from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import SlaPolicy
from courier.common.settings import Settings, get_settings
from courier.common.storage import open_storage
from courier.console.api import create_app
from courier.monitor.incidents import Signal, record_signals
from courier.notifier.rota import Rota
from tests.support.console import api_client, make_token
from tests.support.paging_fixtures import ROTA
from tests.support.services import eventually, running


def test_the_rota_hands_over_at_local_time_and_honours_cover() -> None:
    spec = {**ROTA, "handovers": [{"rotation": "primary", "person": "Ben",
            "start": "2026-12-24T09:00", "end": "2026-12-27T09:00"}]}  # fmt: skip
    spec["people"] = [*ROTA["people"]]
    rota = Rota.model_validate(spec)
    names = lambda at: [p.name for p in rota.chain(at)]  # noqa: E731
    assert names(datetime(2026, 12, 1, 12, tzinfo=UTC)) == ["Ana", "Ben", "Cai"]
    assert names(datetime(2026, 12, 7, 8, 59, tzinfo=UTC)) == ["Ana", "Ben", "Cai"]
    assert names(datetime(2026, 12, 7, 9, 0, tzinfo=UTC)) == ["Cai", "Ben", "Ana"]
    assert names(datetime(2026, 12, 25, 12, tzinfo=UTC))[0] == "Ben"


def test_a_rota_naming_an_unknown_person_is_refused() -> None:
    bad = {**ROTA, "rotations": [{"name": "primary", "start": "2026-01-01T09:00",
                                  "people": ["Zed"]}]}  # fmt: skip
    with pytest.raises(ValueError, match="unknown person 'Zed'"):
        Rota.model_validate(bad)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name, value in (
        ("DATABASE_URL", settings.database_url),
        ("NATS_URL", settings.nats_url),
        ("NATS_NAMESPACE", settings.nats_namespace),
    ):
        monkeypatch.setenv(f"COURIER_{name}", value)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def _cli(runner: CliRunner, args: list[str]) -> Result:
    # The commands run their own event loop, as they do in a terminal.
    return await asyncio.to_thread(runner.invoke, app, args)


async def _incident(db: Database, tenant: Tenant) -> uuid.UUID:
    async with db.transaction() as s:
        (opened,) = await record_signals(
            s,
            [Signal(kind="import_failed", cause_key="x", event_key="e1", tenant_id=tenant.id,
                    tenant=tenant.slug, summary="import of leave.csv failed: disk full")],
            ManualClock(datetime(2026, 12, 1, tzinfo=UTC)).now(),
            SlaPolicy(),
        )  # fmt: skip
    return opened.id


async def test_oncall_apply_and_show_from_the_command_line(
    cli_env: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "rota.yaml"
    path.write_text(yaml.safe_dump(ROTA))
    applied = await _cli(cli_env, ["oncall", "apply", str(path)])
    assert applied.exit_code == 0, applied.output
    shown = await _cli(cli_env, ["oncall", "show", "--at", "2026-12-01T12:00:00+00:00"])
    assert shown.exit_code == 0, shown.output
    assert "Ana → Ben → Cai" in shown.output
    assert "3 rounds in all" in " ".join(shown.output.split())


async def test_incidents_are_listed_acknowledged_noted_and_resolved_from_the_cli(
    cli_env: CliRunner, settings: Settings, db: Database, tenant: Tenant
) -> None:
    incident = str(await _incident(db, tenant))
    listed = await _cli(cli_env, ["incidents", "list", "--json"])
    assert incident in listed.output and "import_failed" in listed.output
    async with running("monitor", settings):
        acked = await _cli(cli_env, ["incidents", "ack", incident, "--by", "ana"])
        assert acked.exit_code == 0, acked.output
        assert f"incident {incident} acknowledged by ana" in acked.output
        assert "acknowledged x1" in acked.output  # the incident as it is now
        again = await _cli(cli_env, ["incidents", "ack", incident])
        assert again.exit_code == 1 and "only open ones" in again.output
        note = ["incidents", "note", incident, "freed space on the volume"]
        noted = await _cli(cli_env, note)
        assert noted.exit_code == 0 and "note added by" in noted.output
        wrong = await _cli(cli_env, [*note, "--kind", "gossip"])
        assert wrong.exit_code == 1 and "note_kind" in wrong.output
        done = await _cli(cli_env, ["incidents", "resolve", incident, "-m", "re-imported"])
        assert done.exit_code == 0 and "resolved by" in done.output
    shown = await _cli(cli_env, ["incidents", "show", incident])
    assert "resolved" in shown.output and "freed space on the volume" in shown.output
    assert "re-imported" in shown.output and "(stopped)" in shown.output
    missing = await _cli(cli_env, ["incidents", "ack", str(uuid.uuid4())])
    assert missing.exit_code == 1 and "no incident" in missing.output


async def test_the_console_api_acknowledges_and_resolves_incidents(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    incident = await _incident(db, tenant)
    # Support's API token: the monitor records its name as who acted.
    token = await make_token(db, "support", name="ana")
    console = create_app(db, open_storage(settings.storage_url), settings)
    async with running("monitor", settings), api_client(console, token) as http:

        async def state(wanted: str) -> dict[str, Any] | None:
            shown = (await http.get(f"/api/incidents/{incident}")).json()
            return shown if shown["state"] == wanted else None

        listed = (await http.get("/api/incidents", params={"state": "open"})).json()
        assert [i["id"] for i in listed] == [str(incident)]
        acked = await http.post(f"/api/incidents/{incident}/ack")
        assert acked.status_code == 202, acked.text
        assert acked.json()["state"] == "open"  # sent; the monitor acknowledges it
        await eventually(lambda: state("acknowledged"))
        again = await http.post(f"/api/incidents/{incident}/ack")
        assert again.status_code == 409 and "only open ones" in again.json()["detail"]
        noted = await http.post(
            f"/api/incidents/{incident}/notes", json={"text": "called Jo", "kind": "contacted"}
        )
        assert noted.status_code == 202, noted.text
        resolved = await http.post(f"/api/incidents/{incident}/resolve")
        assert resolved.status_code == 202, resolved.text
        done = await eventually(lambda: state("resolved"))
        twice = await http.post(f"/api/incidents/{incident}/resolve")
        assert twice.status_code == 409 and "resolved already" in twice.json()["detail"]
        missing = await http.get(f"/api/incidents/{uuid.uuid4()}")
        assert missing.status_code == 404
        missing = await http.post(f"/api/incidents/{uuid.uuid4()}/ack")
        assert missing.status_code == 404 and "no incident" in missing.json()["detail"]
    assert [(n["author"], n["kind"], n["text"]) for n in done["notes"]] == [
        ("token:ana", "note", "acknowledged"),
        ("token:ana", "contacted", "called Jo"),
        ("token:ana", "note", "resolved"),
    ]
