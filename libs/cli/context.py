"""How a command reaches the database: one engine per command, refusals as exit code 1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from courier.common.db.engine import Database
from courier.common.settings import get_settings

T = TypeVar("T")
err = Console(stderr=True)


def run_with_db(
    fn: Callable[[Database], Awaitable[T]],
    *,
    refusals: tuple[type[Exception], ...] = (),
) -> T:
    """Run `fn(db)` on its own event loop; a listed refusal prints its reason and exits 1."""

    async def _main() -> T:
        db = Database(get_settings().database_url)
        try:
            return await fn(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(_main())
    except refusals as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
