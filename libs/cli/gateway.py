"""`courier gateway bans|hostkey|sessions`: operating the SFTP gateway."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from courier.cli.context import run_with_db
from courier.common.db.engine import Database
from courier.common.settings import get_settings
from courier.gateway import hostkeys
from courier.gateway.admin import AdminError

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="The SFTP gateway: bans, host keys, sessions.")
console = Console()
err = Console(stderr=True)


def run_db(fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run one admin action; a refused one exits 1 with the reason."""
    return run_with_db(fn, refusals=(AdminError,))


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@app.command("bans")
def bans_cmd(
    lift: Annotated[str | None, typer.Option(help="Lift the ban on this address.")] = None,
    include_expired: Annotated[bool, typer.Option("--all", help="Show ended bans too.")] = False,
) -> None:
    """List banned source addresses, or lift one with --lift ADDRESS."""
    from courier.gateway import bans

    if lift:
        if not run_db(lambda db: bans.lift(db, lift)):
            err.print(f"[red]error:[/] {lift} is not banned")
            raise typer.Exit(1)
        console.print(f"ban on {lift} lifted")
        return
    table = Table("address", "failures", "reason", "banned at", "until")
    for ban in run_db(lambda db: bans.list_bans(db, include_expired)):
        table.add_row(
            ban.address, str(ban.failures), ban.reason, _when(ban.banned_at), _when(ban.until)
        )
    console.print(table)


@app.command("hostkey")
def hostkey() -> None:
    """Fingerprints of the gateway's host keys (created on first use), for partners to pin."""
    directory = get_settings().gateway_host_key_dir
    for algorithm, fingerprint in hostkeys.fingerprints(directory).items():
        console.print(f"{algorithm} {fingerprint}", highlight=False)


@app.command("sessions")
def sessions_cmd(
    tenant: str | None = None,
    username: str | None = None,
    peer: str | None = None,
    session: Annotated[str | None, typer.Option(help="Show one session's audit lines.")] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent SFTP sessions: who, from where, outcome, transfers and bytes."""
    from courier.console import sessions

    async def _list(db: Database) -> list[sessions.SessionSummary]:
        async with db.session() as s:
            if session:
                found = await sessions.get_session(s, session)
                return [found] if found else []
            return await sessions.list_sessions(
                s, tenant=tenant, username=username, peer=peer, limit=limit
            )

    rows = run_db(_list)
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    table = Table(
        "session", "started", "peer", "user", "tenant", "outcome", "up", "down", "in", "out"
    )
    for r in rows:
        outcome = r.outcome + (f" ({r.failure})" if r.failure else "")
        table.add_row(
            r.session, _when(r.started_at), r.peer, r.username or "-", r.tenant or "-", outcome,
            str(r.uploads), str(r.downloads), str(r.bytes_in), str(r.bytes_out),
        )  # fmt: skip
    console.print(table)
    if session and rows:
        lines = Table("at", "event", "path", "bytes", "reason")
        for e in rows[0].events:
            lines.add_row(_when(e.at), e.kind, e.path or "", str(e.bytes or ""), e.reason or "")
        console.print(lines)
