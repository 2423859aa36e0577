"""Support reads the same audit from the command line as from the console API.

Commands run on a thread of their own, as they run their own event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from courier.cli.main import app
from courier.common.areas import area_key
from courier.common.db.engine import Database
from courier.common.db.models import Import, Tenant
from courier.common.received import record_file
from courier.common.settings import Settings, get_settings
from courier.common.storage import Storage
from tests.support.console import api_client, make_token
from tests.support.fixtures_data import leave_csv
from tests.support.services import eventually, running


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("COURIER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def test_imports_list_and_show_match_the_console(
    cli: CliRunner,
    settings: Settings,
    db: Database,
    storage: Storage,
    tenant: Tenant,
    leave_feed: None,
) -> None:
    key = area_key(tenant.slug, "inbound", "leave_20261101.csv")
    await storage.put(key, leave_csv("E1,annual,8,2026-11-01", "E2,annual,x,2026-11-01"))
    await record_file(db, storage, tenant, "leave_20261101.csv", key, source="api")
    async with running("importer", settings), running("console", settings):

        async def finished() -> Import | None:
            async with db.session() as s:
                return await s.scalar(select(Import).where(Import.finished_at.is_not(None)))

        imp = await eventually(finished)
        base = f"http://127.0.0.1:{settings.console_port}"
        async with api_client(base, await make_token(db, "support")) as http:
            api_list = (await http.get("/api/imports")).json()
            api_detail = (await http.get(f"/api/imports/{imp.id}")).json()

    listed = await asyncio.to_thread(cli.invoke, app, ["imports", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == api_list

    shown = await asyncio.to_thread(cli.invoke, app, ["imports", "show", str(imp.id), "--json"])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail == api_detail
    assert [(r["row_number"], r["action"]) for r in detail["records"]] == [
        (2, "created"),
        (3, "errored"),
    ]

    table = await asyncio.to_thread(cli.invoke, app, ["imports", "show", str(imp.id)])
    assert "leave_20261101.csv" in table.output and "errored" in table.output
    assert "balance_hours" in table.output

    missing = await asyncio.to_thread(
        cli.invoke, app, ["imports", "show", "00000000-0000-0000-0000-000000000000"]
    )
    assert missing.exit_code == 1 and "no import" in missing.output
