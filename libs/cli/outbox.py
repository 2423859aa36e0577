"""`courier outbox …`: events waiting to reach the bus, for whoever is paged about them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from pydantic import BaseModel
from sqlalchemy import select

from courier.cli import output
from courier.cli.context import run_with_bus, run_with_db
from courier.common import outbox
from courier.common.bus import Bus
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.models_outbox import OutboxEvent

app = typer.Typer(no_args_is_help=True, help="Events waiting to be published.")
console = output.Output()


class Waiting(BaseModel):
    id: int
    subject: str
    created_at: datetime
    age_seconds: float
    attempts: int
    last_error: str | None


@app.command("pending")
def pending_command(
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Events not yet published, oldest first, with why the last try failed."""

    async def _list(db: Database) -> list[Waiting]:
        async with db.session() as s:
            rows = await s.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(limit)
            )
            now = utcnow()
            return [
                Waiting(
                    id=r.id,
                    subject=r.subject,
                    created_at=r.created_at,
                    age_seconds=(now - r.created_at).total_seconds(),
                    attempts=r.attempts,
                    last_error=r.last_error,
                )
                for r in rows
            ]

    waiting = run_with_db(_list)
    if as_json:
        output.print_json(console, waiting)
        return
    if not waiting:
        console.print("nothing waiting: every event reached the bus")
        return
    output.table(
        console,
        ("id", "subject", "waiting since", "attempts", "last error"),
        [
            (w.id, w.subject, f"{w.created_at:%Y-%m-%d %H:%M:%S} ({w.age_seconds:.0f} s)",
             w.attempts, w.last_error)
            for w in waiting
        ],
    )  # fmt: skip


@app.command("flush")
def flush_command() -> None:
    """Publish what waits now, instead of at the services' next relay pass."""

    async def _flush(db: Database, bus: Bus) -> tuple[int, int]:
        sent = await outbox.flush(db, bus.publish)
        return sent, (await outbox.pending(db))[0]

    sent, left = run_with_bus(_flush)
    console.print(f"published {sent}; {left} still waiting")
