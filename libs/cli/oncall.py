"""`courier oncall apply FILE` stores the rota; `courier oncall show` says who is paged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from courier.cli import output
from courier.cli.context import run_with_db
from courier.cli.specs import format_errors
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.settings import get_settings
from courier.notifier.rota import Rota, load_rota, save_rota

app = typer.Typer(no_args_is_help=True, help="The on-call rota that every page goes to.")
console = output.Output()
err = output.Output(stderr=True)


@app.command("apply")
def apply(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate and store the rota YAML (people, rotations, handovers, timezone)."""
    try:
        rota = Rota.model_validate(yaml.safe_load(file.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        msg = format_errors(exc) if isinstance(exc, ValidationError) else str(exc)
        err.print(f"[red]error:[/] {file}: {msg}")
        raise typer.Exit(1) from exc

    async def _save(db: Database) -> None:
        async with db.transaction() as s:
            await save_rota(s, rota)

    run_with_db(_save)
    console.print(
        f"on-call rota applied: {len(rota.rotations)} rotation(s), {len(rota.people)} people"
    )


@app.command("show")
def show(
    at: Annotated[
        datetime | None, typer.Option(help="ISO time to look at (default: now, UTC if naive)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (stable keys).")] = False,
) -> None:
    """Who is on call now (or at --at), and the order pages escalate in."""

    async def _load(db: Database) -> Rota | None:
        async with db.session() as s:
            return await load_rota(s)

    rota = run_with_db(_load)
    if rota is None:
        err.print("[red]error:[/] no on-call rota applied (courier oncall apply FILE)")
        raise typer.Exit(1)
    when = at or utcnow()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    on_call = [(rotation.name, rota.on_call(rotation, when)) for rotation in rota.rotations]
    after = rota.escalate_after(get_settings().escalation_minutes)
    if as_json:
        output.print_json(
            console,
            {
                "at": when,
                "timezone": rota.timezone,
                "on_call": [{"rotation": name, **p.model_dump(mode="json")} for name, p in on_call],
                "escalation_minutes": after.total_seconds() / 60,
                "escalation_chain": [p.name for p in rota.chain(when)],
                "escalation_rounds": rota.escalation_rounds,
            },
        )
        return
    console.print(f"on call at {when:%Y-%m-%d %H:%M %Z} (rota time zone {rota.timezone})")
    output.table(
        console,
        ("rotation", "on call", "phone", "email"),
        [(name, p.name, p.phone, p.email) for name, p in on_call],
    )
    chain = " → ".join(p.name for p in rota.chain(when))
    console.print(
        f"escalation, every {after.total_seconds() / 60:g} min unacknowledged: {chain}"
        f" (then again from the top; {rota.escalation_rounds} rounds in all)"
    )
