"""Operators: declare an export in YAML, seed demo data, run, list and redeliver it."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from courier.cli.main import app
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.settings import Settings, get_settings
from tests.support.console import api_client, make_token
from tests.support.services import running
from tests.support.sshd import Sshd

SPEC = """\
tenant: acme
exports:
  - name: payroll
    kind: timesheets
    schedule: {{cron: "0 6 * * 1", timezone: Europe/London}}
    period: previous_week
    file_name: "payroll_{{start:%Y%m%d}}-{{end:%Y%m%d}}.csv"
    destinations:
      - type: pickup
      - type: sftp
        host: 127.0.0.1
        port: {port}
        user: {user}
        private_key: file:{key}
        host_key_sha256: "{fingerprint}"
"""


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name, value in (
        ("DATABASE_URL", settings.database_url),
        ("NATS_URL", settings.nats_url),
        ("NATS_NAMESPACE", settings.nats_namespace),
        ("STORAGE_URL", settings.storage_url),
    ):
        monkeypatch.setenv(f"COURIER_{name}", value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def _invoke(cli: CliRunner, args: list[str]) -> Result:
    # The commands run their own event loop, as they do from a shell.
    return await asyncio.to_thread(cli.invoke, app, args)


async def test_declared_export_runs_lists_and_redelivers(
    cli: CliRunner, settings: Settings, db: Database, tenant: Tenant, sshd: Sshd, tmp_path: Path
) -> None:
    spec = tmp_path / "acme.yaml"
    spec.write_text(
        SPEC.format(
            port=sshd.port, user=sshd.user, key=sshd.client_key_path,
            fingerprint=sshd.host_fingerprint(),
        )
    )  # fmt: skip
    applied = await _invoke(cli, ["feeds", "apply", str(spec)])
    assert applied.exit_code == 0, applied.output
    assert "export acme/payroll (timesheets, 0 6 * * 1 Europe/London" in applied.output

    seeded = await _invoke(
        cli, ["demo", "seed", "--tenant", "acme", "--days", "10", "--employees", "20"]
    )
    assert seeded.exit_code == 0, seeded.output

    day = date.today() - timedelta(days=7)
    run = ["exports", "run", "payroll", "--tenant", "acme", "--period", str(day)]
    async with running("exporter", settings):
        ran = await _invoke(cli, run)
        assert ran.exit_code == 0, ran.output
        assert "delivered" in ran.output
        again = await _invoke(cli, run)
        assert again.exit_code == 1 and "exported already" in again.output

        [export] = json.loads((await _invoke(cli, ["exports", "list", "--json"])).output)
        name = export["file_name"]
        assert name.startswith("payroll_") and export["rows"] > 0
        pushed = sshd.home / name
        assert pushed.exists()
        lines = pushed.read_text().splitlines()
        assert lines[0].startswith("employee_id,employee_name,work_date,start,end")
        assert len(lines) == export["rows"] + 1

        pushed.unlink()  # the vendor lost it
        redone = await _invoke(cli, ["exports", "redeliver", export["id"]])
        assert redone.exit_code == 0, redone.output
        assert "delivered" in redone.output
        assert pushed.exists()
    missing = await _invoke(cli, ["exports", "run", "timesheets", "--tenant", "acme"])
    assert missing.exit_code == 1 and "no export spec 'timesheets'" in missing.output

    base = f"http://127.0.0.1:{settings.console_port}"
    token = await make_token(db, "support")
    async with running("console", settings), api_client(base, token) as h:
        [listed] = (await h.get("/api/exports", params={"tenant": "acme"})).json()
        detail = (await h.get(f"/api/exports/{export['id']}")).json()
    assert listed["id"] == export["id"] and listed["status"] == "delivered"
    # pickup + vendor, then both again after the redelivery
    assert [a["outcome"] for a in detail["attempts"]] == ["delivered"] * 4
