"""`courier`: run services, the dev stack, and the admin commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from courier.cli import (
    accounts,
    backup,
    demo,
    dev,
    exports,
    gateway,
    imports,
    incidents,
    keys,
    oncall,
    outbox,
    provision,
    stack,
    tenants,
    tokens,
    users,
)
from courier.cli import feeds as feeds_cli
from courier.cli import sources as sources_cli
from courier.cli.context import run_with_db
from courier.cli.errors import CourierGroup
from courier.cli.output import Output
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade_sync
from courier.common.settings import get_settings

app = typer.Typer(
    cls=CourierGroup,
    no_args_is_help=True,
    help="Courier: SFTP import/export for the platform.",
    # A traceback's locals could hold a password or a database URL.
    pretty_exceptions_show_locals=False,
)
dev_app = typer.Typer(no_args_is_help=True, help="Run everything on one machine.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
# `list` and `show` live with the feed views; `apply` (every section) is below.
feeds_app = feeds_cli.app
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
app.add_typer(keys.app, name="keys")

console = Output()
err = Output(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=stack.DIR_VARIABLE,
        help="The dev stack to use (default: the nearest ./.courier-dev with a running or "
        "stopped `courier dev up`). COURIER_* settings, when set, win.",
        show_default=False,
    ),
]


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a failed command.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Courier: SFTP import/export for the platform."""
    if ctx.invoked_subcommand != "dev":
        stack.use(data_dir)


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
    data_dir: Annotated[
        Path, typer.Option(envvar=stack.DIR_VARIABLE, help="Where data, logs and keys live.")
    ] = stack.DEFAULT_DIR,
    sftp_port: int = 2222,
    console_port: int = 8080,
) -> None:
    """Start nats-server, migrate SQLite, seed a demo tenant and run every service.

    Ctrl-C stops everything. Other `courier` commands run from this directory (or with
    --data-dir) use this stack's database, bus and storage.
    """
    try:
        dev.up(data_dir, sftp_port, console_port, console)
    except dev.ServiceDied as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        for line in exc.tail:
            err.print(f"  {line}", markup=False, highlight=False)
        raise typer.Exit(1) from exc
    except RuntimeError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc


@dev_app.command("env")
def dev_env(data_dir: DataDir = None) -> None:
    """The dev stack's settings as shell exports: `eval "$(courier dev env)"`."""
    found = stack.read(data_dir) if data_dir is not None else stack.find(Path.cwd())
    if found is None:
        err.print("[red]error:[/] no dev stack here: start one with `courier dev up`")
        raise typer.Exit(1)
    for name, value in sorted(found.settings.items()):
        print(f"export {name}={shlex.quote(value)}")
    if not found.running:
        err.print(f"[yellow]note:[/] the dev stack in {found.data_dir} is not running")


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
