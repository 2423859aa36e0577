"""`courier`: run services, the dev stack, and the admin commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from courier.cli import (
    accounts,
    backup,
    demo,
    dev,
    exports,
    gateway,
    imports,
    incidents,
    oncall,
    outbox,
    provision,
    tenants,
    tokens,
    users,
)
from courier.cli import sources as sources_cli
from courier.cli.context import run_with_db
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade_sync
from courier.common.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="Courier: SFTP import/export for the platform.")
dev_app = typer.Typer(no_args_is_help=True, help="Run everything on one machine.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
feeds_app = typer.Typer(no_args_is_help=True, help="Import feeds.")
app.add_typer(sources_cli.app, name="sources")
for sub, name in (
    (dev_app, "dev"),
    (db_app, "db"),
    (feeds_app, "feeds"),
):
    app.add_typer(sub, name=name)
app.add_typer(tenants.app, name="tenants")
app.add_typer(exports.app, name="exports")
app.add_typer(demo.app, name="demo")
app.add_typer(incidents.app, name="incidents")
app.add_typer(oncall.app, name="oncall")
app.add_typer(accounts.app, name="accounts")
app.add_typer(gateway.app, name="gateway")
app.add_typer(imports.app, name="imports")
app.add_typer(outbox.app, name="outbox")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(backup.app, name="backup")

console = Console()
err = Console(stderr=True)


def _run(fn: Any) -> Any:
    return run_with_db(fn, refusals=(provision.ProvisionError,))


# ------------------------------------------------------------------ service / dev


@app.command("service")
def service(name: Annotated[str, typer.Argument(help="gateway, importer, poller, …")]) -> None:
    """Run one service in the foreground (what a container runs)."""
    from courier.cli.service import UnknownService, run

    try:
        run(name)
    except UnknownService as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@dev_app.command("up")
def dev_up(
    data_dir: Annotated[Path, typer.Option(help="Where data, logs and keys live.")] = Path(
        ".courier-dev"
    ),
    sftp_port: int = 2222,
    console_port: int = 8080,
) -> None:
    """Start nats-server, migrate SQLite, seed a demo tenant and run every service."""
    try:
        dev.up(data_dir, sftp_port, console_port, console)
    except RuntimeError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    upgrade_sync(get_settings().database_url)
    console.print("database is up to date")


@app.command("asyncapi")
def asyncapi() -> None:
    """Print the AsyncAPI document of every event subject (JSON)."""
    from courier.common.asyncapi import document

    print(json.dumps(document(), indent=2))


# ------------------------------------------------------------------ feeds


@feeds_app.command("apply")
def feeds_apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Create or update what a YAML spec file declares (feeds, sources, exports, …)."""
    from courier.cli import specs

    try:
        doc, sections = specs.load(file)
    except specs.SpecError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc

    async def _apply(db: Database) -> list[str]:
        tenant = await provision.get_tenant(db, doc.tenant)
        applied: list[str] = []
        for name, items in sections.items():
            applied += await specs.SECTIONS[name](db, tenant, items)
        return applied

    try:
        applied = _run(_apply)
    except specs.SpecError as exc:
        err.print(f"[red]error:[/] {file}: {exc}")
        raise typer.Exit(1) from exc
    for line in applied:
        console.print(line)


if __name__ == "__main__":
    app()
