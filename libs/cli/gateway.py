"""`courier gateway bans|hostkey|sessions|drain`: operating the SFTP gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel

from courier.cli import output
from courier.cli.context import run_with_db
from courier.cli.users import actor
from courier.common.db.engine import Database
from courier.common.settings import get_settings
from courier.gateway import hostkeys
from courier.gateway.admin import AdminError

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, help="The SFTP gateway: bans, host keys, sessions, drain.")
console = output.Output()
err = output.Output(stderr=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys).")]


class BanView(BaseModel):
    address: str
    failures: int
    reason: str
    banned_at: datetime
    until: datetime
    # Ended by an operator (`--lift`) rather than by its time running out.
    lifted: bool = False


def run_db(fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run one admin action; a refused one exits 1 with the reason."""
    return run_with_db(fn, refusals=(AdminError,))


@app.command("bans")
def bans_cmd(
    lift: Annotated[str | None, typer.Option(help="Lift the ban on this address.")] = None,
    include_expired: Annotated[bool, typer.Option("--all", help="Show ended bans too.")] = False,
    as_json: AsJson = False,
) -> None:
    """List banned source addresses, or lift one with --lift ADDRESS."""
    from courier.gateway import bans

    if lift:
        if not run_db(lambda db: bans.lift(db, lift, actor=actor())):
            err.print(f"[red]error:[/] {lift} is not banned")
            raise typer.Exit(1)
        console.print(f"ban on {lift} lifted")
        return

    async def _list(db: Database) -> list[BanView]:
        rows = await bans.list_bans(db, include_expired)
        return [
            BanView(
                address=b.address,
                failures=b.failures,
                reason=b.reason,
                banned_at=b.banned_at,
                until=b.until,
                lifted=b.lifted_at is not None,
            )
            for b in rows
        ]

    found = run_db(_list)
    if as_json:
        output.print_json(console, found)
        return
    output.table(
        console,
        ("address", "failures", "reason", "banned at", "until", "lifted"),
        [(b.address, b.failures, b.reason, b.banned_at, b.until, b.lifted) for b in found],
    )


@app.command("hostkey")
def hostkey() -> None:
    """Fingerprints of the gateway's host keys (created on first use), for partners to pin,
    and of the keys to come during a rotation (marked `next`)."""
    directory = get_settings().gateway_host_key_dir
    for algorithm, fingerprint in hostkeys.fingerprints(directory).items():
        console.print(f"{algorithm} {fingerprint}", highlight=False)
    for algorithm, fingerprint in hostkeys.fingerprints(directory, coming=True).items():
        console.print(f"{algorithm} {fingerprint} next", highlight=False)


@app.command("sessions")
def sessions_cmd(
    tenant: str | None = None,
    username: str | None = None,
    peer: str | None = None,
    session: Annotated[str | None, typer.Option(help="Show one session's audit lines.")] = None,
    limit: int = 50,
    as_json: AsJson = False,
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
        output.print_json(console, rows)
        return
    output.table(
        console,
        ("session", "started", "peer", "user", "tenant", "outcome", "up", "down", "in", "out"),
        [
            (r.session, r.started_at, r.peer, r.username, r.tenant,
             r.outcome + (f" ({r.failure})" if r.failure else ""),
             r.uploads, r.downloads, r.bytes_in, r.bytes_out)
            for r in rows
        ],
    )  # fmt: skip
    if session and rows:
        output.table(
            console,
            ("at", "event", "path", "bytes", "reason"),
            [(e.at, e.kind, e.path, e.bytes, e.reason) for e in rows[0].events],
        )


@app.command("drain")
def drain_cmd(
    within: Annotated[
        float | None,
        typer.Option(help="Give up after this many seconds (default: the drain's own deadline)."),
    ] = None,
) -> None:
    """Drain the gateway on this host (a pod's preStop hook): no new sessions, open ones
    finish, the rest are disconnected at COURIER_GATEWAY_DRAIN_SECONDS. Returns once no
    session is left; exit 1 when no gateway answers or sessions outlast --within."""
    import time

    import httpx

    from courier.gateway.drain import WIND_DOWN_SECONDS

    settings = get_settings()
    if not settings.health_port:
        err.print("[red]error:[/] COURIER_HEALTH_PORT is not set: the gateway has no /drain")
        raise typer.Exit(1)
    url = f"http://127.0.0.1:{settings.health_port}/drain"
    budget = within if within is not None else settings.gateway_drain_seconds + WIND_DOWN_SECONDS
    deadline = time.monotonic() + budget
    try:
        status = httpx.post(url, timeout=5).raise_for_status().json()
        console.print(f"draining: {status['sessions']} sessions open")
        while not status["drained"] and time.monotonic() < deadline:
            time.sleep(0.5)
            status = httpx.get(url, timeout=5).raise_for_status().json()
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/] no gateway drain at {url}: {exc}")
        raise typer.Exit(1) from None
    if not status["drained"]:
        err.print(f"[red]error:[/] {status['sessions']} sessions still open after {budget:g} s")
        raise typer.Exit(1)
    console.print("drained: no session left")
