"""`courier backup …`: how far behind the backups are, whether they are whole, and restores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from courier.backup import restore as backups
from courier.cli import output
from courier.cli.context import run_with_db
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.regions import Regions
from courier.common.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Backups: status, verification and restores.")
console = output.Output()
err = output.Output(stderr=True)

TenantOption = Annotated[str | None, typer.Option("--tenant", help="Only this tenant (slug).")]


def _age(since: datetime) -> str:
    seconds = int((utcnow() - since).total_seconds())
    hours, rest = divmod(max(0, seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@app.command("status")
def status(
    tenant: TenantOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Backlog per region, the oldest file not yet backed up, and recent failures."""

    async def _status(db: Database) -> backups.Status:
        return await backups.status(db, tenant)

    report = run_with_db(_status, refusals=(backups.RestoreError,))
    if as_json:
        output.print_json(console, report)
        return
    waiting = sum(b.pending + b.failed for b in report.backlog)
    console.print(f"confirmed backups: {report.confirmed}; waiting: {waiting}")
    if report.backlog:
        output.table(
            console,
            ("region", "pending", "failed", "oldest waiting"),
            [
                (b.region, b.pending, b.failed, _age(b.oldest) if b.oldest else None)
                for b in report.backlog
            ],
        )
    if report.oldest:
        o = report.oldest
        console.print(
            f"oldest not backed up: {o.key} ({o.status}, waiting {_age(o.since)}, "
            f"{o.attempts} attempts)",
            highlight=False,
        )
    if report.failures:
        output.table(
            console,
            ("key", "region", "attempts", "last error"),
            [(f.key, f.region, f.attempts, f.last_error) for f in report.failures],
        )


@app.command("verify")
def verify(tenant: TenantOption = None) -> None:
    """Read back every confirmed backup and compare its checksum; exit 1 on any mismatch."""

    async def _verify(db: Database) -> tuple[int, list[backups.Mismatch]]:
        return await backups.verify(db, Regions(get_settings()), tenant)

    checked, problems = run_with_db(_verify, refusals=(backups.RestoreError,))
    for p in problems:
        version = f" (version {p.version_id})" if p.version_id else ""
        err.print(f"[red]mismatch:[/] {p.key}{version}: {p.problem}", highlight=False)
    console.print(f"checked {checked} backups: {len(problems)} mismatched")
    if problems:
        raise typer.Exit(1)


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("restore")
def restore(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant (slug).")],
    path: Annotated[
        str | None,
        typer.Argument(help="The file (e.g. inbound/leave.csv), or with --since an area."),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="A local file (a directory with --since); default: put back."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="The backup version id to restore.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Every file backed up at or after this time.")
    ] = None,
) -> None:
    """Restore byte-identical files from the backup, checksum verified."""
    if path is None and since is None:
        raise typer.BadParameter("give a PATH, or --since TIME for a whole area")
    if since is not None and version is not None:
        raise typer.BadParameter("--version restores one file: give PATH without --since")
    regions = Regions(get_settings())

    async def _restore(db: Database) -> list[backups.Restored]:
        if since is not None:
            return await backups.restore_since(db, regions, tenant, _since(since), path=path, to=to)
        assert path is not None
        return [await backups.restore(db, regions, tenant, path, to=to, version=version)]

    done = run_with_db(_restore, refusals=(backups.RestoreError,))
    for r in done:
        version_note = f" version {r.version_id}" if r.version_id else ""
        console.print(
            f"restored {r.key}{version_note} to {r.to}: {r.size} bytes, sha256 {r.sha256}",
            highlight=False,
        )
    console.print(f"{len(done)} files restored")
