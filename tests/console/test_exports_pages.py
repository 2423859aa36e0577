"""Export pages: the build, every delivery attempt, whether and when the partner collected
the file, and redelivery staged as `courier exports redeliver` stages it, audited; a
customer reads their tenant's exports only."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fastapi import FastAPI
from sqlalchemy import select

from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.db.models_exports import Export, ExportSpec
from courier.common.events import ExportRedeliver, FileDownloaded
from courier.common.storage import Storage
from courier.exporter import commands
from courier.exporter.schedule import Run, claim_period
from courier.exporter.worker import Exporter
from courier.monitor.pickups import on_downloaded
from tests.support.console import api_client, csrf_of, make_token, make_user, sign_in
from tests.support.staged import staged

MakeExport = Callable[[Tenant], Awaitable[Export]]


async def _audit(db: Database, action: str) -> list[tuple[str, str | None]]:
    async with db.session() as s:
        rows = await s.scalars(
            select(ConsoleAuditEntry)
            .where(ConsoleAuditEntry.action == action)
            .order_by(ConsoleAuditEntry.at)
        )
        return [(e.actor, e.target_id) for e in rows]


async def test_the_export_page_shows_the_build_each_attempt_and_when_the_partner_collected_it(
    db: Database, app: FastAPI, tenant: Tenant, watched_export: MakeExport
) -> None:
    export = await watched_export(tenant)
    path = f"/outbound/{export.file_name}"
    await make_user(db, "sue", "support")
    async with api_client(app) as http:
        await sign_in(http, "sue")
        waiting = (await http.get(f"/exports/{export.id}")).text
        # The partner downloads it over SFTP; the gateway tells the monitor.
        download = FileDownloaded(
            tenant_id=tenant.id, tenant=tenant.slug, path=path, size=export.size or 0,
            username="acme-payroll",
        )  # fmt: skip
        assert await on_downloaded(db, download, utcnow()) == 1
        collected = (await http.get(f"/exports/{export.id}")).text
        listed = (await http.get("/exports")).text

    assert export.file_name and export.sha256
    for shown in (waiting, collected):
        assert export.file_name in shown and export.sha256 in shown
        assert "pickup:/outbound" in shown and '<span class="badge delivered">' in shown
        assert path in shown
    # Before: a countdown to the collection deadline; after: who collected it, and when.
    assert 'class="countdown"' in waiting and "not yet" in waiting
    assert "collected</span> by acme-payroll" in collected
    assert 'class="countdown"' not in collected
    assert "collected</span> by acme-payroll" in listed
    assert f'href="/exports/{export.id}"' in listed and ">delivered<" in listed


async def test_support_redelivers_from_the_page_as_the_cli_does_and_it_is_audited(
    db: Database, storage: Storage, app: FastAPI, tenant: Tenant, watched_export: MakeExport
) -> None:
    export = await watched_export(tenant)
    page = f"/exports/{export.id}"
    await make_user(db, "sue", "support")
    async with api_client(app) as http:
        await sign_in(http, "sue")
        csrf = csrf_of((await http.get(page)).text)
        assert (await http.post(f"{page}/redeliver")).status_code == 403  # no CSRF token
        answer = await http.post(f"{page}/redeliver", data={"csrf": csrf})
        assert answer.status_code == 303 and urlsplit(answer.headers["location"]).path == page
        shown = (await http.get(answer.headers["location"])).text
        assert "redelivery sent" in shown and "Waiting for the exporter" in shown

        [command] = await staged(db, ExportRedeliver.subject)
        assert isinstance(command, ExportRedeliver)
        assert (command.export_id, command.tenant_id, command.by) == (export.id, tenant.id, "sue")
        # The exporter carries it out: a second attempt, and nothing waits any more.
        await commands.redeliver(command, Exporter(db, storage))
        shown = (await http.get(page)).text
    assert "Waiting for the exporter" not in shown
    assert shown.count('<td><span class="badge delivered">delivered</span></td>') == 2
    assert await _audit(db, "export.redeliver") == [("sue", str(export.id))]


async def test_an_export_that_was_never_built_is_not_redelivered_and_the_page_says_why(
    db: Database, app: FastAPI, tenant: Tenant, watched_export: MakeExport
) -> None:
    built = await watched_export(tenant)
    async with db.session() as s:
        spec = await s.get(ExportSpec, built.spec_id)
    assert spec is not None
    day = built.period_start - timedelta(days=3)
    pending = await claim_period(db, spec, Run(datetime.now(UTC), day, day))
    assert pending is not None
    token = await make_token(db, "support", name="ops-bot")
    async with api_client(app, token) as robot:
        api = await robot.post(f"/api/exports/{pending.id}/redeliver")
        assert api.status_code == 409 and "was never built" in api.json()["detail"]
    await make_user(db, "sue", "support")
    async with api_client(app) as http:
        await sign_in(http, "sue")
        shown = (await http.get(f"/exports/{pending.id}")).text
        assert "/redeliver" not in shown  # nothing to deliver yet
        csrf = csrf_of(shown)
        answer = await http.post(f"/exports/{pending.id}/redeliver", data={"csrf": csrf})
        shown = (await http.get(answer.headers["location"])).text
    assert "was never built" in shown
    assert await staged(db, ExportRedeliver.subject) == []
    assert await _audit(db, "export.redeliver") == []


async def test_a_customer_reads_their_tenants_exports_only_and_cannot_redeliver(
    db: Database,
    storage: Storage,
    app: FastAPI,
    tenant: Tenant,
    other_tenant: Tenant,
    watched_export: MakeExport,
) -> None:
    ours = await watched_export(tenant)
    theirs = await watched_export(other_tenant)
    await make_user(db, "carla", "customer", "acme")
    token = await make_token(db, "customer", "acme", name="carla-robot")
    async with api_client(app) as http, api_client(app, token) as robot:
        csrf = await sign_in(http, "carla")
        for params in ({}, {"tenant": "globex"}):
            listed = (await http.get("/exports", params=params)).text
            assert str(ours.file_name) in listed and str(theirs.file_name) not in listed
            api = (await robot.get("/api/exports", params=params)).json()
            assert str(theirs.id) not in [e["id"] for e in api]
        assert [e["id"] for e in (await robot.get("/api/exports")).json()] == [str(ours.id)]

        for url in ("/exports/{}", "/exports/{}/file", "/api/exports/{}"):
            own = await http.get(url.format(ours.id))
            assert own.status_code == 200, url
            foreign = await http.get(url.format(theirs.id))
            missing = await http.get(url.format(uuid.uuid4()))
            assert foreign.status_code == missing.status_code == 404, url
            assert str(theirs.file_name) not in foreign.text
        assert (await robot.get(f"/api/exports/{theirs.id}/file")).status_code == 404

        # Their own file downloads, byte for byte as placed, and the download is on record.
        got = await robot.get(f"/api/exports/{ours.id}/file")
        assert got.status_code == 200
        assert ours.storage_key is not None
        assert got.content == await storage.read(ours.storage_key)
        assert str(ours.file_name) in got.headers["content-disposition"]

        for export in (ours, theirs):
            page = await http.post(f"/exports/{export.id}/redeliver", data={"csrf": csrf})
            assert page.status_code == 403
            api_answer = await robot.post(f"/api/exports/{export.id}/redeliver")
            assert api_answer.status_code == 403
        own_page = (await http.get(f"/exports/{ours.id}")).text
        assert "/redeliver" not in own_page
    assert await staged(db, ExportRedeliver.subject) == []
    assert await _audit(db, "export.redeliver") == []
    assert [actor for actor, _ in await _audit(db, "download")] == ["carla", "token:carla-robot"]
