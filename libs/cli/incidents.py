"""`courier incidents list|show|ack|resolve|note`: what on-call does from a terminal.

Acknowledging, resolving and notes are sent to the monitor as the console sends them
(the monitor owns incidents); the command waits a little to show what became of it.
"""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated, Any

import typer

from courier.cli import output
from courier.cli.context import queued, relay_once, run_with_db, wait_for
from courier.common import incident_actions
from courier.common.db.engine import Database
from courier.common.events import IncidentAct
from courier.console import incidents as views

app = typer.Typer(no_args_is_help=True, help="Incidents: list, inspect, acknowledge, resolve.")
console = output.Output()
err = output.Output(stderr=True)


def _run(fn: Any) -> Any:
    return run_with_db(fn, refusals=(views.IncidentError, ValueError))


def _print(detail: views.IncidentDetail, as_json: bool) -> None:
    if as_json:
        output.print_json(console, detail)
        return
    console.print(
        f"[bold]{detail.kind}[/] ({detail.incident_class}) {detail.state} "
        f"x{detail.occurrences} — {detail.tenant or '-'}/{detail.feed or '-'}"
        f"{' file ' + detail.file_name if detail.file_name else ''}"
    )
    console.print(f"  {detail.summary}", highlight=False)
    for key, value in detail.details.items():
        console.print(f"  {key}: {value}", highlight=False)
    for timer in detail.timers:
        state = "stopped" if timer.stopped_at else "breached" if timer.breached_at else "running"
        console.print(f"  SLA {timer.kind}: due {timer.due_at:%Y-%m-%d %H:%M} UTC ({state})")
    for note in detail.notes:
        console.print(f"  {note.at:%Y-%m-%d %H:%M} {note.author} [{note.kind}] {note.text}")
    for d in detail.deliveries:
        console.print(
            f"  {d.created_at:%Y-%m-%d %H:%M} {d.channel} → {d.recipient_name} "
            f"(level {d.level}): {d.status}{' ' + d.error if d.error else ''}"
        )
    for p in detail.pending_actions:
        where = "sent, waiting for the monitor" if p.sent else "queued, the bus has not taken it"
        console.print(
            f"  [yellow]pending:[/] {p.action} by {p.by} at {p.requested_at:%Y-%m-%d %H:%M:%S} "
            f"({where})"
        )


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="open, acknowledged, resolved, unresolved")] = (
        "unresolved"
    ),
    tenant: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Incidents, most recently seen first (unresolved ones by default)."""

    async def _list(db: Database) -> list[views.IncidentSummary]:
        async with db.session() as s:
            return await views.list_incidents(
                s, state=state or None, tenant=tenant, kind=kind, limit=limit
            )

    rows = _run(_list)
    if as_json:
        output.print_json(console, rows)
        return
    output.table(
        console,
        ("id", "kind", "class", "state", "tenant", "feed", "seen", "last seen", "summary"),
        [
            (r.id, r.kind, r.incident_class, r.state, r.tenant, r.feed,
             r.occurrences, f"{r.last_seen_at:%Y-%m-%d %H:%M}", r.summary)
            for r in rows
        ],
    )  # fmt: skip


@app.command("show")
def show(incident_id: uuid.UUID, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One incident with its notes, SLA timers and every message sent about it."""

    async def _show(db: Database) -> views.IncidentDetail:
        async with db.session() as s:
            return await views.incident_detail(s, incident_id)

    _print(_run(_show), as_json)


async def _progress(db: Database, command: IncidentAct) -> incident_actions.Progress | None:
    async with db.session() as s:
        return incident_actions.progress(
            await incident_actions.find(s, command.incident_id), command
        )


def _send(
    incident_id: uuid.UUID,
    action: incident_actions.Action,
    by: str,
    wait: float,
    text: str = "",
    note_kind: str = "note",
) -> None:
    """Send the action as the console does; wait a while to show what became of it."""
    what = incident_actions.WHAT[action]
    follow = f"courier incidents show {incident_id}"

    async def _go(db: Database) -> tuple[str, str, views.IncidentDetail | None]:
        async with db.transaction() as s:
            command = await incident_actions.request(s, incident_id, action, by, text, note_kind)
        if not await relay_once(db, command):
            return "queued", queued(what, follow), None
        found = await wait_for(lambda: _progress(db, command), wait)
        if found is None:
            return "sent", f"{what} sent; the monitor carries it out (follow with `{follow}`)", None
        async with db.session() as s:
            return found.outcome, found.message, await views.incident_detail(s, incident_id)

    outcome, message, detail = run_with_db(_go, refusals=(incident_actions.ActionRefused,))
    if outcome == "refused":
        err.print(f"[red]error:[/] {message}")
        raise typer.Exit(1)
    console.print(message, highlight=False)
    if detail is not None:
        _print(detail, as_json=False)


By = Annotated[str, typer.Option(help="Who acts (default: your user).")]
Wait = Annotated[
    float, typer.Option(help="Seconds to wait for the monitor to carry it out (0: do not wait).")
]


@app.command("ack")
def ack(incident_id: uuid.UUID, by: By = getpass.getuser(), wait: Wait = 10.0) -> None:
    """Acknowledge: stops the page from escalating to the next person."""
    _send(incident_id, "ack", by, wait)


@app.command("resolve")
def resolve(
    incident_id: uuid.UUID,
    note: Annotated[str, typer.Option("--note", "-m")] = "",
    by: By = getpass.getuser(),
    wait: Wait = 10.0,
) -> None:
    """Resolve: stops every SLA timer of the incident."""
    _send(incident_id, "resolve", by, wait, note)


@app.command("note")
def note(
    incident_id: uuid.UUID,
    text: str,
    kind: Annotated[
        str, typer.Option(help="note, contacted (stops the 6 h contact clock), "
                          "partner_response (starts a 24 h clock), reply (stops it)")
    ] = "note",
    by: By = getpass.getuser(),
    wait: Wait = 10.0,
) -> None:  # fmt: skip
    """Add a note; `--kind` records contact with the partner for the SLA."""
    _send(incident_id, "note", by, wait, text, kind)
