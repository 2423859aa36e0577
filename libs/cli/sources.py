"""`courier sources list|test NAME`: what the poller pulls from, and whether it can."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from sqlalchemy import select

from courier.cli import output
from courier.cli.context import run_with_db
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_sources import Source

app = typer.Typer(no_args_is_help=True, help="Vendor SFTP servers the poller pulls from.")
console = output.Output()
err = output.Output(stderr=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys, ids in full).")]
TenantOption = Annotated[str | None, typer.Option(help="Tenant slug, if the name is ambiguous.")]


class SourceView(BaseModel):
    """A source as declared, and how its polling goes. Credentials in the spec are
    secret references (`env:NAME`, `file:/path`), never the secrets."""

    id: uuid.UUID
    tenant: str
    name: str
    enabled: bool
    spec: dict[str, Any]
    last_poll_at: datetime | None
    last_success_at: datetime | None
    failing_since: datetime | None
    consecutive_failures: int
    last_error: str | None

    @classmethod
    def of(cls, source: Source) -> SourceView:
        return cls(
            id=source.id,
            tenant=source.tenant.slug,
            name=source.name,
            enabled=source.enabled,
            spec=source.spec,
            last_poll_at=source.last_poll_at,
            last_success_at=source.last_success_at,
            failing_since=source.failing_since,
            consecutive_failures=source.consecutive_failures,
            last_error=source.last_error,
        )


def _sources(tenant: str | None) -> list[Source]:
    async def _load(db: Database) -> list[Source]:
        async with db.session() as session:
            query = select(Source).join(Tenant).order_by(Tenant.slug, Source.name)
            if tenant:
                query = query.where(Tenant.slug == tenant)
            return list(await session.scalars(query))

    return run_with_db(_load)


def _remote(spec: dict[str, Any]) -> str:
    remote = spec["remote"]
    return (
        f"{remote['user']}@{remote['host']}:{remote.get('port', 22)} {spec.get('directory', '.')}"
    )


def _one(name: str, tenant: str | None) -> Source:
    matches = [s for s in _sources(tenant) if s.name == name]
    if len(matches) != 1:
        err.print(f"[red]error:[/] {'no' if not matches else 'several'} source(s) named {name!r}")
        raise typer.Exit(1)
    return matches[0]


@app.command("list")
def list_sources(tenant: str | None = None, as_json: AsJson = False) -> None:
    """Sources by tenant and name, with when each last succeeded and why it fails."""
    sources = _sources(tenant)
    if as_json:
        output.print_json(console, [SourceView.of(s) for s in sources])
        return
    output.table(
        console,
        ("tenant", "name", "remote", "pattern", "every",
         "last success", "failing since", "last error"),
        [
            (s.tenant.slug, s.name + ("" if s.enabled else " (disabled)"), _remote(s.spec),
             s.spec.get("pattern"), f"{s.spec.get('interval_seconds')}s",
             s.last_success_at, s.failing_since, s.last_error)
            for s in sources
        ],
    )  # fmt: skip


@app.command("show")
def show_source(name: str, tenant: TenantOption = None, as_json: AsJson = False) -> None:
    """One source: where it pulls from, what, how often, and how its polling goes."""
    view = SourceView.of(_one(name, tenant))
    if as_json:
        output.print_json(console, view)
        return
    cell = output.cell
    console.print(f"source {view.tenant}/{view.name} ({view.id})", highlight=False)
    console.print(f"  state:         {'enabled' if view.enabled else 'disabled'}")
    console.print(f"  remote:        {_remote(view.spec)}", highlight=False)
    console.print(f"  pattern:       {view.spec.get('pattern')}", markup=False, highlight=False)
    console.print(f"  every:         {view.spec.get('interval_seconds')} s")
    console.print(f"  last poll:     {cell(view.last_poll_at)}")
    console.print(f"  last success:  {cell(view.last_success_at)}")
    console.print(
        f"  failing since: {cell(view.failing_since)} ({view.consecutive_failures} in a row)"
    )
    console.print(f"  last error:    {cell(view.last_error)}", markup=False, highlight=False)


@app.command("test")
def test_source(name: str, tenant: TenantOption = None) -> None:
    """Connect, verify the pinned host key, and list the files that match the pattern."""
    from courier.common.remote import connect
    from courier.poller.fetch import list_remote
    from courier.poller.spec import SourceSpec

    spec = SourceSpec.model_validate(_one(name, tenant).spec)

    async def _probe() -> None:
        async with await connect(spec.remote) as conn, conn.start_sftp_client() as sftp:
            console.print(
                f"connected to {spec.remote.label}; host key matches the pinned fingerprint"
            )
            files = await list_remote(sftp, spec)
        console.print(f"{len(files)} file(s) in {spec.directory} match {spec.pattern!r}")
        output.table(console, ("name", "size", "mtime"), [(f.name, f.size, f.mtime) for f in files])

    try:
        asyncio.run(_probe())
    except Exception as exc:
        err.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
