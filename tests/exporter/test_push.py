"""Pushing to a vendor's OpenSSH server: delivered whole, retried, refused on a changed key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_exports import Export, Timesheet
from courier.common.storage import Storage
from courier.exporter.schedule import Run, claim_period
from courier.exporter.worker import Exporter, Tuning
from tests.exporter.conftest import DAY, make_spec
from tests.support.infra import free_port
from tests.support.sshd import Sshd
from tests.support.staged import staged


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


FAST = Tuning(retry_min_seconds=0.2, retry_max_seconds=0.5)


def vendor(sshd: Sshd, **overrides: Any) -> dict[str, Any]:
    dest = {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "private_key": f"file:{sshd.client_key_path}",
        "host_key_sha256": sshd.host_fingerprint(),
        "directory": "incoming",
    }
    dest.update(overrides)
    return dest


async def _run(db: Database, storage: Storage, tenant: Tenant, **spec: Any) -> Export:
    spec_row = await make_spec(db, tenant, **spec)
    exporter = Exporter(db, storage, tuning=FAST)
    export = await claim_period(db, spec_row, Run(exporter.clock(), DAY, DAY))
    assert export is not None
    await exporter.process(export.id)
    async with db.session() as s:
        found = await s.scalar(select(Export).where(Export.id == export.id))
        assert found is not None
        return found


async def test_export_is_pushed_to_the_vendor_and_announced(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    sshd: Sshd,
) -> None:
    (sshd.home / "incoming").mkdir()
    delivered_before = sample("courier_exports_total", kind="timesheets", status="delivered")
    attempts_before = sample("courier_export_delivery_attempts_total", outcome="delivered")
    export = await _run(db, storage, tenant, destinations=[{"type": "pickup"}, vendor(sshd)])
    assert export.status == "delivered", export.error
    # What an SRE's dashboard shows: one more delivered export, two delivered copies.
    assert sample("courier_exports_total", kind="timesheets", status="delivered") == (
        delivered_before + 1
    )
    assert sample("courier_export_delivery_attempts_total", outcome="delivered") == (
        attempts_before + 2
    )
    pushed = (sshd.home / "incoming" / "timesheets_20261102.csv").read_bytes()
    assert pushed == await storage.read("tenants/acme/outbound/timesheets_20261102.csv")
    assert sorted(p.name for p in (sshd.home / "incoming").iterdir()) == [
        "timesheets_20261102.csv"
    ]  # no temporary file left behind
    delivered = {e.destination for e in (await staged(db))}  # type: ignore[attr-defined]
    assert delivered == {"pickup:/outbound", f"sftp://{sshd.user}@127.0.0.1:{sshd.port}/incoming"}
    assert {a.outcome for a in export.attempts} == {"delivered"}


async def test_changed_host_key_is_refused_and_nothing_is_sent(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    sshd: Sshd,
) -> None:
    pinned = sshd.host_fingerprint()
    sshd.new_host_key()  # the vendor's server now presents another key
    sshd.restart()
    export = await _run(db, storage, tenant, destinations=[vendor(sshd, host_key_sha256=pinned)])
    assert export.status == "undeliverable"
    [attempt] = export.attempts  # not retried: it will not fix itself
    assert attempt.outcome == "failed"
    assert f"host key {sshd.host_fingerprint()} does not match the pinned {pinned}" in (
        attempt.error or ""
    )
    [alert] = await staged(db)
    assert alert.kind == "export_undeliverable"  # type: ignore[attr-defined]
    assert "does not match the pinned" in alert.details["last_error"]  # type: ignore[attr-defined]
    assert not (sshd.home / "incoming").exists()


async def test_unreachable_vendor_is_retried_until_the_window_closes(
    db: Database,
    storage: Storage,
    tenant: Tenant,
    timesheets: list[Timesheet],
    sshd: Sshd,
) -> None:
    closed_port = free_port()
    export = await _run(
        db,
        storage,
        tenant,
        delivery_window=timedelta(seconds=2),
        destinations=[vendor(sshd, port=closed_port)],
    )
    assert export.status == "undeliverable"
    assert len(export.attempts) >= 2
    assert all(a.outcome == "failed" for a in export.attempts)
    assert export.attempts[-1].error == (
        f"sftp://{sshd.user}@127.0.0.1:{closed_port}/incoming: connection refused"
    )
    [alert] = await staged(db)
    assert alert.kind == "export_undeliverable"  # type: ignore[attr-defined]
    assert alert.details["last_error"] == export.attempts[-1].error  # type: ignore[attr-defined]
