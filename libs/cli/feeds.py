"""`courier feeds …`: what each feed takes, when its files are applied, and what waits.

`apply` (in `main`) declares feeds from YAML; `list` and `show` read them back with
what support asks first: is the feed still in its first days of approval, and how
many of its files wait for a person or for the feed's apply window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from sqlalchemy import func, select

from courier.cli.context import run_with_db
from courier.cli.output import Output, print_json, table
from courier.common.db.engine import Database
from courier.common.db.models import Feed, Import, Tenant
from courier.console.feeds import FirstDaysView, apply_window_text, first_days_view

app = typer.Typer(no_args_is_help=True, help="Import feeds.")
console = Output()
err = Output(stderr=True)


class FeedOut(BaseModel):
    id: str
    tenant: str
    name: str
    kind: str
    pattern: str
    enabled: bool
    apply_window: str | None
    hold_for_approval: Any
    first_days: FirstDaysView | None
    scheduled: int
    awaiting_approval: int
    next_apply_at: datetime | None


async def _feeds(db: Database, tenant: str | None, name: str | None) -> list[FeedOut]:
    now = datetime.now(UTC)
    async with db.session() as s:
        query = select(Feed, Tenant).join(Tenant, Tenant.id == Feed.tenant_id)
        if tenant:
            query = query.where(Tenant.slug == tenant)
        if name:
            query = query.where(Feed.name == name)
        rows = list(await s.execute(query.order_by(Tenant.slug, Feed.name)))
        waiting = {
            (feed_id, status): (n, first)
            for feed_id, status, n, first in await s.execute(
                select(Import.feed_id, Import.status, func.count(), func.min(Import.apply_at))
                .where(
                    Import.feed_id.in_([f.id for f, _ in rows]),
                    Import.status.in_(("scheduled", "awaiting_approval")),
                )
                .group_by(Import.feed_id, Import.status)
            )
        }
    out = []
    for feed, owner in rows:
        scheduled, next_at = waiting.get((feed.id, "scheduled"), (0, None))
        out.append(
            FeedOut(
                id=str(feed.id),
                tenant=owner.slug,
                name=feed.name,
                kind=feed.kind,
                pattern=feed.pattern,
                enabled=feed.enabled,
                apply_window=apply_window_text(feed, owner),
                hold_for_approval=(feed.spec or {}).get("hold_for_approval", False),
                first_days=first_days_view(feed, owner, now),
                scheduled=scheduled,
                awaiting_approval=waiting.get((feed.id, "awaiting_approval"), (0, None))[0],
                next_apply_at=next_at,
            )
        )
    return out


def _approval(f: FeedOut) -> str:
    if f.first_days is not None:
        return f"first days: {f.first_days.days_left} left" if f.first_days.days_left else "-"
    hold = f.hold_for_approval
    return "every file" if hold is True else f"until {hold}" if hold else "-"


@app.command("list")
def feeds_list(
    tenant: str | None = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every feed, with its apply window, approval and the files waiting."""
    feeds = run_with_db(lambda db: _feeds(db, tenant, None))
    if as_json:
        print_json(console, feeds)
        return
    table(
        console,
        ["id", "tenant", "name", "kind", "pattern", "enabled", "apply window", "approval",
         "scheduled", "held"],
        [
            (f.id, f.tenant, f.name, f.kind, f.pattern, f.enabled, f.apply_window,
             _approval(f), f.scheduled, f.awaiting_approval)
            for f in feeds
        ],
    )  # fmt: skip


@app.command("show")
def feeds_show(
    name: str,
    tenant: Annotated[str | None, typer.Option(help="The feed's tenant (slug).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One feed: its first-days approval (days left), apply window and waiting files."""
    found = run_with_db(lambda db: _feeds(db, tenant, name))
    if not found:
        where = f" of tenant {tenant}" if tenant else ""
        err.print(f"[red]error:[/] no feed {name}{where} (see `courier feeds list`)")
        raise typer.Exit(1)
    if len(found) > 1:
        tenants = ", ".join(f.tenant for f in found)
        err.print(f"[red]error:[/] feed {name} exists in {tenants}: add --tenant")
        raise typer.Exit(1)
    [f] = found
    if as_json:
        print_json(console, f)
        return
    console.print(f"{f.tenant}/{f.name} ({f.kind}, {f.pattern})", highlight=False, markup=False)
    lines = [
        f"id: {f.id}",
        f"enabled: {'yes' if f.enabled else 'no'}",
        f"apply window: {f.apply_window or 'none (files are applied as they arrive)'}",
        f.first_days.text if f.first_days else f"hold for approval: {_approval(f)}",
        f"scheduled files: {f.scheduled}"
        + (f" (next at {f.next_apply_at:%Y-%m-%d %H:%M} UTC)" if f.next_apply_at else ""),
        f"files awaiting approval: {f.awaiting_approval}",
    ]
    for line in lines:
        console.print(f"  {line}", highlight=False, markup=False)
