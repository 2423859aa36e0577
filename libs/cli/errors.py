"""What a command says when it cannot do its work: one line on stderr saying what to do.

Every command runs inside `CourierGroup.invoke`, so a missing or unmigrated database,
an unreachable bus or anything unforeseen ends the same way: `error: …`, exit 1, no
traceback. `courier --debug …` lets the exception through, traceback and all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click
import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

from courier.cli import stack
from courier.cli.output import Output
from courier.common.settings import get_settings

err: Console = Output(stderr=True)
# Exit code of a command that could not reach or read what it needs (refusals also exit 1).
FAILED = 1
# What is not an error but how click and typer end a command.
PASS_THROUGH: tuple[type[BaseException], ...] = (
    click.ClickException,
    click.exceptions.Exit,
    click.exceptions.Abort,
    typer.Exit,
    typer.Abort,
)


class CommandFailed(Exception):
    """Raised with the line to print; the command changed nothing."""


def database_label(url: str | None = None) -> str:
    """The database URL fit to print: without its password."""
    url = url or get_settings().database_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unreadable COURIER_DATABASE_URL)"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    words = str(orig).strip().splitlines()
    return words[0] if words else type(orig).__name__


async def _schema_state(url: str) -> tuple[set[str], set[str]] | None:
    """(applied, wanted) migration revisions; None: the database has no Courier tables."""
    from alembic.script import ScriptDirectory

    from courier.common.db.engine import Database
    from courier.common.db.migrate import alembic_config

    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            if "alembic_version" not in tables:
                return None
            found = await conn.execute(text("SELECT version_num FROM alembic_version"))
            applied = set(found.scalars())
    finally:
        await db.dispose()
    wanted = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    return applied, wanted


def explain_database() -> str | None:
    """What is wrong with the database, reached again to look (None: nothing)."""
    url = get_settings().database_url
    where = f"the database at {database_label(url)}{stack.hint()}"
    try:
        state = asyncio.run(_schema_state(url))
    except Exception as probe:
        return f"cannot reach {where}: {_first_line(probe)}; check COURIER_DATABASE_URL"
    if state is None:
        return f"{where} has no Courier tables: run `courier db upgrade`, or start `courier dev up`"
    applied, wanted = state
    if applied != wanted:
        return (
            f"{where} is at migration {', '.join(sorted(applied)) or 'none'}, this Courier "
            f"needs {', '.join(sorted(wanted))}: run `courier db upgrade`"
        )
    return None


def explain(exc: BaseException) -> str:
    """The one line for `exc`."""
    if isinstance(exc, CommandFailed | stack.NoStack):
        return str(exc)
    if isinstance(exc, SQLAlchemyError | OSError):
        # A connection refused may be the database's or another's: the database says.
        found = explain_database()
        if found is not None:
            return found
        if isinstance(exc, SQLAlchemyError):
            return f"the database refused the command: {_first_line(exc)}"
        return f"{_first_line(exc)}{stack.hint()}"
    return f"{type(exc).__name__}: {_first_line(exc)} (`courier --debug …` shows where)"


class CourierGroup(TyperGroup):
    """The `courier` command group: every failure of every command is told here, once."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PASS_THROUGH:
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            err.print(Text.assemble(("error: ", "red"), explain(exc)), highlight=False)
            raise typer.Exit(FAILED) from exc
