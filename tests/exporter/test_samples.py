"""Sample exports for a partner's testing: `courier exports run SPEC --test` puts a marked
copy of the period's file in `/outbound/test/`, and the period's own export still runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from courier.cli import provision
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Timesheet
from courier.common.settings import Settings
from courier.common.storage import Storage
from courier.console.api import create_app
from tests.exporter.conftest import DAY, make_spec
from tests.support.cli import cli_env, courier
from tests.support.clients import openssh_available, openssh_sftp
from tests.support.console import api_client, make_token
from tests.support.services import running
from tests.support.sshd import Sshd

pytestmark = [
    pytest.mark.usefixtures("quick_exporter"),
    pytest.mark.skipif(not openssh_available(), reason="needs OpenSSH sftp and sshpass"),
]

PASSWORD = "Corr3ct-Horse-Battery"
LIVE = "timesheets_20261102.csv"
SAMPLE = f"TEST_{LIVE}"


async def _delivered_events(bus: Bus) -> list[dict]:
    js = bus.broker.connection.jetstream()
    sub = await js.pull_subscribe(
        bus.subject("courier.export.delivered"), stream=bus.stream("COURIER_EXPORTS")
    )
    try:
        return [json.loads(m.data) for m in await sub.fetch(10, timeout=2)]
    except TimeoutError:
        return []


async def test_a_sample_export_lands_in_outbound_test_and_the_period_still_exports(
    settings: Settings,
    db: Database,
    storage: Storage,
    bus: Bus,
    tenant: Tenant,
    timesheets: list[Timesheet],
    sshd: Sshd,
    tmp_path: Path,
) -> None:
    await make_spec(
        db,
        tenant,
        created=datetime.now(UTC) - timedelta(minutes=1),
        # Once a year: the service's own schedule stays out of this test's way.
        schedule={"cron": "0 6 1 1 *", "timezone": "Europe/London"},
        destinations=[
            {"type": "pickup"},
            {
                "type": "sftp",
                "host": "127.0.0.1",
                "port": sshd.port,
                "user": sshd.user,
                "private_key": f"file:{sshd.client_key_path}",
                "host_key_sha256": sshd.host_fingerprint(),
            },
        ],
    )
    await provision.create_account(
        db, tenant, "acme-payroll", PASSWORD, auth_policy="password",
        allowed_cidrs=["127.0.0.1/32"],
    )  # fmt: skip
    env = cli_env(settings)
    run = ["exports", "run", "payroll", "--tenant", "acme", "--day", str(DAY)]

    async with running("exporter", settings), running("gateway", settings):
        code, out = await courier(env, *run, "--test")
        assert code == 0, out
        assert "sample (test) export" in out and "delivered" in out
        assert SAMPLE in out

        got = await openssh_sftp(
            settings.gateway_port, "acme-payroll",
            ["ls -l /outbound/test", f"get /outbound/test/{SAMPLE} {tmp_path}/sample.csv"],
            password=PASSWORD,
        )  # fmt: skip
        assert SAMPLE in got.stdout, got.stderr
        sample = (tmp_path / "sample.csv").read_bytes()
        # Never pushed to the partner's own server, never placed as the period's file.
        assert list(sshd.home.iterdir()) == []
        assert not await storage.exists(f"tenants/acme/outbound/{LIVE}")

        # The sample is not the period's export: the live run still builds and delivers.
        code, out = await courier(env, *run)
        assert code == 0, out
        assert "sample" not in out and "delivered" in out
        live = (sshd.home / LIVE).read_bytes()
        # A second sample of the same period is as welcome as the first.
        code, out = await courier(env, *run, "--test")
        assert code == 0 and "sample (test) export" in out, out

    assert sample == live
    assert sample.decode().splitlines()[0] == "Employee,Name,Date,Start,Hours,Cost centre"

    code, out = await courier(env, "exports", "list", "--tenant", "acme", "--json")
    listed = json.loads(out)
    assert sorted((e["test"], e["file_name"], e["status"]) for e in listed) == [
        (False, LIVE, "delivered"),
        (True, SAMPLE, "delivered"),
        (True, SAMPLE, "delivered"),
    ]
    [live_id] = [e["id"] for e in listed if not e["test"]]
    sample_id = next(e["id"] for e in listed if e["test"])
    sample_view = next(e for e in listed if e["id"] == sample_id)
    assert [a["destination"] for a in sample_view["attempts"]] == ["pickup:/outbound/test"]
    code, out = await courier(env, "exports", "list", "--tenant", "acme")
    assert out.count("(test)") == 2, out  # the spec column: "payroll (test)"

    # Only the period's export is announced as delivered (pickup and push).
    events = await _delivered_events(bus)
    assert sorted(e["destination"].split(":")[0] for e in events) == ["pickup", "sftp"]
    assert {e["export_id"] for e in events} == {live_id}

    token = await make_token(db, "support")
    async with api_client(create_app(db, storage, settings), token) as http:
        shown = (await http.get(f"/api/exports/{sample_id}")).json()
        page = (await http.get("/exports", params={"tenant": "acme"})).text
    assert shown["test"] is True and shown["file_name"] == SAMPLE
    assert 'class="badge test"' in page
