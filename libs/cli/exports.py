"""`courier exports …`: run an export now, list exports, deliver one again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from courier.cli import provision
from courier.cli.context import run_with_bus, run_with_db
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models_exports import ExportSpec
from courier.common.settings import get_settings
from courier.common.storage import open_storage
from courier.console.exports import ExportView, export_view, get_export_view, list_exports
from courier.exporter.worker import Exporter

app = typer.Typer(no_args_is_help=True, help="Timesheet and actuals exports.")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _with_exporter(fn: Callable[[Exporter], Awaitable[T]]) -> T:
    """An exporter like the service's, publishing to the same bus."""

    async def _run(db: Database, bus: Bus) -> T:
        return await fn(Exporter(db, open_storage(get_settings().storage_url)))

    return run_with_bus(_run, refusals=(provision.ProvisionError,))


def _print(view: ExportView) -> None:
    console.print(
        f"export {view.id} {view.tenant}/{view.spec} {view.period_start}..{view.period_end}: "
        f"[bold]{view.status}[/]",
        highlight=False,
    )
    if view.file_name:
        console.print(f"  {view.file_name}: {view.rows} rows, {view.size} bytes, {view.sha256}")
    for a in view.attempts:
        console.print(
            f"  {a.attempted_at:%Y-%m-%d %H:%M:%S} {a.destination} {a.outcome}"
            + (f": {a.error}" if a.error else ""),
            highlight=False,
        )
    for w in view.pickups:
        if w.collected_at:
            state = f"collected by {w.collected_by} at {w.collected_at:%Y-%m-%d %H:%M}"
        else:
            state = f"not collected yet (due {w.collect_by:%Y-%m-%d %H:%M} UTC)"
            if w.alerted_at:
                state = f"not collected by {w.collect_by:%Y-%m-%d %H:%M} UTC (alerted)"
        console.print(f"  {w.path}: {state}", highlight=False)
    if view.status == "delivering" and view.deliver_by:
        console.print(f"  the exporter keeps trying until {view.deliver_by:%Y-%m-%d %H:%M} UTC")


async def _view(exporter: Exporter, export_id: uuid.UUID) -> ExportView:
    return export_view(await exporter.load(export_id))


@app.command("run")
def run(
    spec: Annotated[str, typer.Argument(help="Export spec name.")],
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    period: Annotated[
        str | None, typer.Option(help="A date (YYYY-MM-DD) in the period; default: the one due.")
    ] = None,
) -> None:
    """Build the period now and try each destination once (the service retries the rest)."""
    day = date.fromisoformat(period) if period else None

    async def _go(exporter: Exporter) -> ExportView:
        t = await provision.get_tenant(exporter.db, tenant)
        async with exporter.db.session() as s:
            row = await s.scalar(
                select(ExportSpec).where(ExportSpec.tenant_id == t.id, ExportSpec.name == spec)
            )
        if row is None:
            raise provision.ProvisionError(f"no export spec {spec!r} for tenant {tenant!r}")
        export = await exporter.run_now(row, day)
        if export is None:
            raise provision.ProvisionError(
                "that period was exported already; see `courier exports list`, "
                "or `courier exports redeliver ID`"
            )
        await exporter.process(export.id, single_attempt=True)
        return await _view(exporter, export.id)

    view = _with_exporter(_go)
    _print(view)
    if view.status in ("failed", "undeliverable"):
        raise typer.Exit(1)


@app.command("redeliver")
def redeliver(export_id: uuid.UUID) -> None:
    """Deliver a built export again to all its destinations, with a fresh window."""

    async def _go(exporter: Exporter) -> ExportView:
        export = await exporter.reopen_delivery(export_id)
        if export is None:
            raise provision.ProvisionError(f"no export {export_id}")
        if export.storage_key is None:
            raise provision.ProvisionError(f"export {export_id} was never built ({export.status})")
        if await exporter.process(export_id, single_attempt=True) is None:
            console.print("another exporter is working on it; it will deliver again")
        return await _view(exporter, export_id)

    view = _with_exporter(_go)
    _print(view)
    if view.status in ("failed", "undeliverable"):
        raise typer.Exit(1)


@app.command("list")
def list_command(
    tenant: str | None = None,
    status: str | None = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent exports, newest first."""

    async def _list(db: Database) -> list[ExportView]:
        async with db.session() as s:
            return await list_exports(s, tenant=tenant, status=status, limit=limit)

    rows = run_with_db(_list)
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    table = Table(
        "id", "tenant", "spec", "period", "status", "file", "rows", "attempts", "collected"
    )
    for r in rows:
        table.add_row(
            str(r.id), r.tenant, r.spec, f"{r.period_start}..{r.period_end}", r.status,
            r.file_name or "-", str(r.rows if r.rows is not None else "-"), str(len(r.attempts)),
            _collected(r),
        )  # fmt: skip
    console.print(table)


def _collected(view: ExportView) -> str:
    if not view.pickups:
        return "-"
    if all(w.collected_at for w in view.pickups):
        return "yes"
    return "overdue" if any(w.alerted_at and not w.collected_at for w in view.pickups) else "no"


@app.command("show")
def show_command(
    export_id: uuid.UUID,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One export: its file, every delivery attempt, and whether the partner collected it."""

    async def _show(db: Database) -> ExportView | None:
        async with db.session() as s:
            return await get_export_view(s, export_id)

    view = run_with_db(_show)
    if view is None:
        err.print(f"[red]error:[/] no export {export_id}")
        raise typer.Exit(1)
    if as_json:
        console.print_json(view.model_dump_json())
        return
    _print(view)
