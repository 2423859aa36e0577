"""`courier imports …`: the import audit, and decisions on held imports."""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated, Any, Literal, TypeVar

import typer

from courier.cli import output
from courier.cli.context import queued, relay_once, run_with_db, wait_for
from courier.common import decisions
from courier.common.db.engine import Database
from courier.common.db.models import Import
from courier.common.events import ImportDecide

app = typer.Typer(no_args_is_help=True, help="The import audit and approvals.")
console = output.Output()
err = output.Output(stderr=True)
T = TypeVar("T")


@app.command("list")
def imports_list(
    tenant: str | None = None,
    status: str | None = None,
    test: Annotated[
        bool | None,
        typer.Option("--test/--live", help="Only test files, or only live files (default: both)."),
    ] = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent imports, newest first (a test file's status reads "(test)": nothing applied)."""
    from courier.console import views

    async def _list(db: Database) -> list[views.ImportSummary]:
        async with db.session() as s:
            return await views.list_imports(s, tenant=tenant, status=status, test=test, limit=limit)

    rows = run_with_db(_list)
    if as_json:
        output.print_json(console, rows)
        return
    output.table(
        console,
        ("id", "tenant", "feed", "file", "status",
         "created", "updated", "unchanged", "deleted", "errored", "received"),
        [
            (r.id, r.tenant, r.feed, r.file_name, f"{r.status} (test)" if r.test else r.status,
             r.created, r.updated, r.unchanged, r.deleted, r.errored, r.received_at)
            for r in rows
        ],
    )  # fmt: skip


def _print_detail(detail: Any) -> None:
    console.print(
        f"[bold]{detail.file_name}[/] ({detail.tenant}/{detail.feed or '-'}): {detail.status}"
    )
    if detail.test:
        console.print("  [yellow]TEST file:[/] checked in full, nothing applied (a preview)")
    if detail.error:
        console.print(f"  reason: {detail.error}")
    if detail.decided_by:
        console.print(f"  decided by {detail.decided_by} at {detail.decided_at:%Y-%m-%d %H:%M:%S}")
    for p in detail.pending_decisions:
        where = "sent, waiting for the importer" if p.sent else "queued, the bus has not taken it"
        console.print(
            f"  [yellow]decision pending:[/] {p.decision} by {p.by} "
            f"at {p.requested_at:%Y-%m-%d %H:%M:%S} ({where})"
        )
    for k, v in detail.details.items():
        console.print(f"  {k}: {v}", highlight=False)
    console.print(
        f"  created {detail.created}, updated {detail.updated}, unchanged {detail.unchanged}, "
        f"deleted {detail.deleted}, errored {detail.errored}; sha256 {detail.sha256}"
    )
    output.table(
        console,
        ("row", "key", "action", "changes / error"),
        [
            (
                rec.row_number,
                rec.record_key,
                rec.action,
                rec.error
                or ", ".join(f"{k}: {v[0]} → {v[1]}" for k, v in (rec.changes or {}).items()),
            )
            for rec in detail.records
        ],
    )


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
        output.print_json(console, detail)
        return
    _print_detail(detail)


async def _outcome(db: Database, command: ImportDecide) -> tuple[str, str] | None:
    """What the importer made of `command`, once it has (None: not yet)."""
    async with db.session() as s:
        imp = await s.get(Import, command.import_id)
    if imp is None:
        return None
    asked = command.occurred_at.isoformat()
    for refused in (imp.details or {}).get("refused_decisions", []):
        if refused.get("requested_at") == asked:
            return "refused", refused.get("reason", "refused")
    if imp.status == "discarded":
        return "discarded", "change set discarded; nothing applied"
    if imp.status == "scheduled" and imp.decision == "approve":
        return "scheduled", f"approved: {imp.details.get('scheduled')}"
    if imp.status != "awaiting_approval":
        return "applied", f"applied: {imp.status}"
    if imp.finished_at is not None and imp.finished_at > command.occurred_at:
        return "changed", imp.details.get("held") or "the change set changed; shown again"
    return None


def _decide(
    import_id: uuid.UUID, decision: Literal["approve", "reject"], by: str | None, wait: float
) -> None:
    """Send the decision as the console does; wait a while to say what became of it."""
    who = by or getpass.getuser()

    async def _go(db: Database) -> tuple[str, str, Any]:
        async with db.transaction() as s:
            command = await decisions.request(s, import_id, decision, who)
        if not await relay_once(db, command):
            return "queued", queued(decision, f"courier imports show {import_id}"), None
        found = await wait_for(lambda: _outcome(db, command), wait)
        if found is None:
            return (
                "sent",
                (
                    f"{decision} sent; the importer carries it out "
                    f"(follow with `courier imports show {import_id}`)"
                ),
                None,
            )
        return found[0], found[1], await _detail(db, import_id)

    outcome, message, detail = run_with_db(_go, refusals=(decisions.DecisionRefused,))
    if outcome == "refused":
        err.print(f"[red]error:[/] {message}")
        raise typer.Exit(1)
    if outcome == "changed":
        err.print(f"[yellow]not applied:[/] {message}")
        _print_detail(detail)
        raise typer.Exit(3)
    console.print(message)
    if detail is not None:
        _print_detail(detail)


Wait = Annotated[
    float, typer.Option(help="Seconds to wait for the importer to carry it out (0: do not wait).")
]


@app.command("approve")
def imports_approve(
    import_id: uuid.UUID,
    by: Annotated[str | None, typer.Option(help="Who approves (default: your user).")] = None,
    wait: Wait = 30.0,
) -> None:
    """Apply a held import's change set, exactly as shown (exit 3: it changed, shown again)."""
    _decide(import_id, "approve", by, wait)


@app.command("reject")
def imports_reject(
    import_id: uuid.UUID,
    by: Annotated[str | None, typer.Option(help="Who rejects (default: your user).")] = None,
    wait: Wait = 30.0,
) -> None:
    """Discard a held import's change set; nothing is applied."""
    _decide(import_id, "reject", by, wait)
