"""`courier imports …`: the import audit, and decisions on held imports."""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from courier.cli.context import run_with_bus, run_with_db
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.outbox import flush_quietly
from courier.common.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="The import audit and approvals.")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


@app.command("list")
def imports_list(
    tenant: str | None = None,
    status: str | None = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent imports, newest first."""
    from courier.console import views

    async def _list(db: Database) -> list[views.ImportSummary]:
        async with db.session() as s:
            return await views.list_imports(s, tenant=tenant, status=status, limit=limit)

    rows = run_with_db(_list)
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    table = Table(
        "id", "tenant", "feed", "file", "status",
        "created", "updated", "unchanged", "deleted", "errored", "received",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            str(r.id), r.tenant, r.feed or "-", r.file_name, r.status,
            str(r.created), str(r.updated), str(r.unchanged), str(r.deleted), str(r.errored),
            r.received_at.strftime("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
    console.print(table)


def _print_detail(detail: Any) -> None:
    console.print(
        f"[bold]{detail.file_name}[/] ({detail.tenant}/{detail.feed or '-'}): {detail.status}"
    )
    if detail.error:
        console.print(f"  reason: {detail.error}")
    for k, v in detail.details.items():
        console.print(f"  {k}: {v}", highlight=False)
    console.print(
        f"  created {detail.created}, updated {detail.updated}, unchanged {detail.unchanged}, "
        f"deleted {detail.deleted}, errored {detail.errored}; sha256 {detail.sha256}"
    )
    table = Table("row", "key", "action", "changes / error")
    for rec in detail.records:
        info = rec.error or ", ".join(
            f"{k}: {v[0]} → {v[1]}" for k, v in (rec.changes or {}).items()
        )
        table.add_row(str(rec.row_number or "-"), rec.record_key or "-", rec.action, info)
    console.print(table)


async def _detail(db: Database, import_id: uuid.UUID, action: str | None = None) -> Any:
    from courier.console import views

    async with db.session() as s:
        imp = await views.get_import(s, import_id)
        return None if imp is None else await views.import_detail(s, imp, action=action)


@app.command("show")
def imports_show(
    import_id: uuid.UUID,
    action: str | None = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One import with its records (created / updated / unchanged / deleted / errored)."""
    detail = run_with_db(lambda db: _detail(db, import_id, action))
    if detail is None:
        err.print(f"[red]error:[/] no import {import_id}")
        raise typer.Exit(1)
    if as_json:
        console.print_json(detail.model_dump_json())
        return
    _print_detail(detail)


def _decide(import_id: uuid.UUID, approve: bool, by: str | None) -> None:
    from courier.common.storage import open_storage
    from courier.importer import approval

    who = by or getpass.getuser()

    async def _go(db: Database, bus: Bus) -> tuple[approval.Decision, Any]:
        storage = open_storage(get_settings().storage_url)
        if approve:
            decision = await approval.approve(db, storage, import_id, who)
        else:
            decision = await approval.reject(db, storage, import_id, who)
        # The same events the importer publishes when the console decides (staged with
        # the decision; what the bus does not take now, a service's relay sends later).
        await flush_quietly(db, bus.publish)
        return decision, await _detail(db, import_id)

    decision, detail = run_with_bus(_go, refusals=(approval.ApprovalError,))
    if decision.outcome == "changed":
        err.print(f"[yellow]not applied:[/] {decision.message}")
        _print_detail(detail)
        raise typer.Exit(3)
    console.print(decision.message)
    _print_detail(detail)


@app.command("approve")
def imports_approve(
    import_id: uuid.UUID,
    by: Annotated[str | None, typer.Option(help="Who approves (default: your user).")] = None,
) -> None:
    """Apply a held import's change set, exactly as shown (exit 3: it changed, shown again)."""
    _decide(import_id, True, by)


@app.command("reject")
def imports_reject(
    import_id: uuid.UUID,
    by: Annotated[str | None, typer.Option(help="Who rejects (default: your user).")] = None,
) -> None:
    """Discard a held import's change set; nothing is applied."""
    _decide(import_id, False, by)
