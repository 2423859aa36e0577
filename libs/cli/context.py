"""How a command reaches the database and the bus: one of each per command, refusals as exit 1."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from sqlalchemy import select
from sqlalchemy.engine import make_url

from courier.cli import stack
from courier.cli.errors import CommandFailed, database_label
from courier.cli.output import Output
from courier.common import outbox
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models_outbox import OutboxEvent
from courier.common.events import Event
from courier.common.regions import public_url
from courier.common.settings import get_settings

T = TypeVar("T")
err = Output(stderr=True)
BUS_CONNECT_SECONDS = 10
# How long a command waits for the bus before leaving its staged events to a relay.
RELAY_CONNECT_SECONDS = 3


class BusUnreachable(Exception):
    """The bus did not answer; the command changed nothing."""


def require_database(url: str) -> None:
    """A SQLite file that does not exist is not created by a command that only reads it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).exists():
        raise CommandFailed(
            f"no Courier database at {database_label(url)}: start `courier dev up` (commands "
            "run next to it find its data), set COURIER_DATABASE_URL, or create this one "
            "with `courier db upgrade`"
        )


def run_with_db(
    fn: Callable[[Database], Awaitable[T]],
    *,
    refusals: tuple[type[Exception], ...] = (),
) -> T:
    """Run `fn(db)` on its own event loop; a listed refusal prints its reason and exits 1."""

    async def _main() -> T:
        url = get_settings().database_url
        require_database(url)
        db = Database(url)
        try:
            return await fn(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(_main())
    except refusals as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def run_with_bus(
    fn: Callable[[Database, Bus], Awaitable[T]],
    *,
    refusals: tuple[type[Exception], ...] = (),
) -> T:
    """Like `run_with_db`, with the bus connected first.

    A command whose change other services must hear of (an approval, an export)
    connects before it changes anything: with the bus down it refuses, instead of
    changing the database and leaving the event unpublished.
    """

    async def _main(db: Database) -> T:
        settings = get_settings()
        bus = Bus(settings, client_name="courier-cli")
        # A stopped dev stack's bus is gone with it: no use waiting for it.
        wait = 0.5 if stack.current and not stack.current.running else BUS_CONNECT_SECONDS
        try:
            await asyncio.wait_for(bus.connect(), wait)
        except Exception as exc:
            await bus.stop()
            raise BusUnreachable(
                f"cannot reach the bus at {public_url(settings.nats_url)} "
                f"({str(exc) or type(exc).__name__}){stack.hint()}; nothing was changed"
            ) from exc
        try:
            return await fn(db, bus)
        finally:
            await bus.stop()

    return run_with_db(_main, refusals=(BusUnreachable, *refusals))


async def relay_once(db: Database, command: Event) -> bool:
    """One pass of the outbox relay: True once `command` is on the bus, False if not yet.

    Judged by the command's own row, so another event still waiting (an old one the
    bus refuses) does not make this one look queued. Nothing is lost either way: what
    is not sent now, the relay of any running service sends later.
    """
    bus = Bus(get_settings(), client_name="courier-cli")
    try:
        await asyncio.wait_for(bus.connect(), RELAY_CONNECT_SECONDS)
        await outbox.flush(db, bus.publish)
        async with db.session() as s:
            sent = await s.scalar(
                select(OutboxEvent.id).where(
                    OutboxEvent.msg_id == command.msg_id(), OutboxEvent.published_at.is_not(None)
                )
            )
        return sent is not None
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await bus.stop()


async def wait_for(probe: Callable[[], Awaitable[T | None]], seconds: float) -> T | None:
    """Ask `probe` until it answers or `seconds` pass (None: no answer yet).

    For a command sent to a service: the person waits on the row the service changes,
    and there is nothing else to wait on.
    """
    found = await probe()
    deadline = time.monotonic() + seconds
    while found is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        found = await probe()
    return found


def queued(what: str, follow: str) -> str:
    """What to say of a command that stays in the outbox because the bus is down."""
    return (
        f"{what} queued: the bus is not reachable; it is sent as soon as a Courier "
        f"service's relay runs (see `courier outbox pending` and `{follow}`)"
    )
