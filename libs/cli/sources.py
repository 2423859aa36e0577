"""`courier sources list|test NAME`: what the poller pulls from, and whether it can."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from courier.cli.context import run_with_db
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_sources import Source

app = typer.Typer(no_args_is_help=True, help="Vendor SFTP servers the poller pulls from.")
console = Console()
err = Console(stderr=True)


def _sources(tenant: str | None) -> list[Source]:
    async def _load(db: Database) -> list[Source]:
        async with db.session() as session:
            query = select(Source).join(Tenant).order_by(Tenant.slug, Source.name)
            if tenant:
                query = query.where(Tenant.slug == tenant)
            return list(await session.scalars(query))

    return run_with_db(_load)


@app.command("list")
def list_sources(tenant: str | None = None) -> None:
    table = Table(
        "tenant",
        "name",
        "remote",
        "pattern",
        "every",
        "last success",
        "failing since",
        "last error",
    )
    for s in _sources(tenant):
        spec = s.spec
        remote = spec["remote"]
        table.add_row(
            s.tenant.slug,
            s.name + ("" if s.enabled else " (disabled)"),
            f"{remote['user']}@{remote['host']}:{remote['port']} {spec['directory']}",
            spec["pattern"],
            f"{spec['interval_seconds']}s",
            s.last_success_at.isoformat(timespec="seconds") if s.last_success_at else "-",
            s.failing_since.isoformat(timespec="seconds") if s.failing_since else "-",
            s.last_error or "-",
        )
    console.print(table)


@app.command("test")
def test_source(
    name: str,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant slug, if the name is ambiguous.")
    ] = None,
) -> None:
    """Connect, verify the pinned host key, and list the files that match the pattern."""
    from courier.common.remote import connect
    from courier.poller.fetch import list_remote
    from courier.poller.spec import SourceSpec

    matches = [s for s in _sources(tenant) if s.name == name]
    if len(matches) != 1:
        err.print(f"[red]error:[/] {'no' if not matches else 'several'} source(s) named {name!r}")
        raise typer.Exit(1)
    spec = SourceSpec.model_validate(matches[0].spec)

    async def _probe() -> None:
        async with await connect(spec.remote) as conn, conn.start_sftp_client() as sftp:
            console.print(
                f"connected to {spec.remote.label}; host key matches the pinned fingerprint"
            )
            files = await list_remote(sftp, spec)
        table = Table("name", "size", "mtime")
        for f in files:
            table.add_row(f.name, str(f.size), str(f.mtime))
        console.print(f"{len(files)} file(s) in {spec.directory} match {spec.pattern!r}")
        console.print(table)

    try:
        asyncio.run(_probe())
    except Exception as exc:
        err.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
