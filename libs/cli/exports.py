"""`courier exports …`: run an export now, list exports, deliver one again.

Runs and redeliveries are sent to the exporter as commands (it owns exports); the
command waits a little to show what became of it.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from courier.cli import output
from courier.cli.context import queued, relay_once, run_with_db, wait_for
from courier.common import export_requests
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models_exports import Export
from courier.common.events import ExportRedeliver, ExportRun
from courier.console.exports import ExportView, get_export_view, list_exports

app = typer.Typer(no_args_is_help=True, help="Timesheet and actuals exports.")
console = output.Output()
err = output.Output(stderr=True)
FINISHED = ("delivered", "failed", "undeliverable")


def _print(view: ExportView) -> None:
    console.print(
        f"{'sample (test) export' if view.test else 'export'} {view.id} "
        f"{view.tenant}/{view.spec} {view.period_start}..{view.period_end}: "
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


def _tried_everywhere(export: Export) -> bool:
    """Whether the export's delivery round finished, or tried every destination once."""
    if export.status in FINISHED:
        return True
    if export.status != "delivering" or export.delivery_started_at is None:
        return False
    started = export.delivery_started_at
    tried = {a.destination for a in export.attempts if a.attempted_at >= started}
    # A sample goes to /outbound/test/ alone.
    return len(tried) >= (1 if export.test else len(export.spec.spec.get("destinations") or []))


async def _answer(db: Database, command: ExportRun | ExportRedeliver) -> Export | None:
    """The export `command` asked for, once the exporter tried to deliver it (None: not yet)."""
    async with db.session() as s:
        if isinstance(command, ExportRun) and command.test:
            export = await s.get(Export, command.event_id)  # a sample has its request's id
        elif isinstance(command, ExportRun):
            export = await export_requests.export_holding(s, command.spec_id, command.day)
        else:
            export = await s.get(Export, command.export_id)
            if export is not None and not export_requests.round_since(export, command):
                export = None
    return export if export is not None and _tried_everywhere(export) else None


def _send(
    stage: Callable[[AsyncSession], Awaitable[ExportRun | ExportRedeliver]],
    what: str,
    follow: str,
    wait: float,
) -> None:
    """Send the command; wait a while for the exporter to try each destination, and show it."""

    async def _go(db: Database) -> tuple[str, ExportView | None]:
        async with db.transaction() as s:
            command = await stage(s)
        if not await relay_once(db, command):
            return queued(what, follow), None
        found = await wait_for(lambda: _answer(db, command), wait)
        if found is None:
            return f"{what} sent; the exporter carries it out (follow with `{follow}`)", None
        async with db.session() as s:
            return "", await get_export_view(s, found.id)

    message, view = run_with_db(_go, refusals=(export_requests.ExportRefused,))
    if view is None:
        console.print(message, highlight=False)
        return
    _print(view)
    if view.status in ("failed", "undeliverable"):
        raise typer.Exit(1)


Wait = Annotated[
    float,
    typer.Option(help="Seconds to wait for the exporter to try each destination (0: do not wait)."),
]
By = Annotated[str | None, typer.Option(help="Who asks (default: your user).")]


@app.command("run")
def run(
    spec: Annotated[str, typer.Argument(help="Export spec name.")],
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    period: Annotated[
        str | None,
        typer.Option(
            "--period", "--day", help="A date (YYYY-MM-DD) in the period; default: the one due."
        ),
    ] = None,
    test: Annotated[
        bool,
        typer.Option(
            "--test",
            help="Build a sample for the partner's testing into /outbound/test/ (TEST_ name); "
            "it is not the period's export and is never pushed.",
        ),
    ] = False,
    by: By = None,
    wait: Wait = 30.0,
) -> None:
    """Build the period now and deliver it; the exporter retries what fails until the window
    closes."""
    day = date.fromisoformat(period) if period else None
    who = by or getpass.getuser()
    _send(
        lambda s: export_requests.request_run(s, tenant, spec, day, who, utcnow(), test=test),
        f"{'sample' if test else 'run'} of {tenant}/{spec}",
        f"courier exports list --tenant {tenant}",
        wait,
    )


@app.command("redeliver")
def redeliver(export_id: uuid.UUID, by: By = None, wait: Wait = 30.0) -> None:
    """Deliver a built export again to all its destinations, with a fresh window."""
    who = by or getpass.getuser()
    _send(
        lambda s: export_requests.request_redeliver(s, export_id, who),
        f"redelivery of export {export_id}",
        f"courier exports show {export_id}",
        wait,
    )


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
        output.print_json(console, rows)
        return
    output.table(
        console,
        ("id", "tenant", "spec", "period", "status", "file", "rows", "attempts", "collected"),
        [
            (r.id, r.tenant, f"{r.spec} (test)" if r.test else r.spec,
             f"{r.period_start}..{r.period_end}", r.status, r.file_name, r.rows,
             len(r.attempts), _collected(r))
            for r in rows
        ],
    )  # fmt: skip


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
        output.print_json(console, view)
        return
    _print(view)
