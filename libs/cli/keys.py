"""`courier keys …`: OpenPGP keys per tenant.

Courier's key pair decrypts what the tenant's partners send and signs what they collect;
partners' public keys verify their signatures and receive encrypted exports. Secret keys
are accepted only under COURIER_PGP_PASSPHRASE and are never printed.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from courier.cli import output
from courier.cli.context import run_with_db
from courier.cli.users import actor
from courier.common import pgp_keys
from courier.common.db.engine import Database
from courier.common.pgp_keys import KeyRefused, PgpKeyView
from courier.common.reminders import plural
from courier.common.settings import get_settings

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True, help="OpenPGP keys: Courier's per tenant, partners'.")
console = output.Output()
err = output.Output(stderr=True)

Tenant = Annotated[str, typer.Option(help="Tenant slug.")]


def _run(fn: Callable[[Database], Awaitable[T]]) -> T:
    return run_with_db(fn, refusals=(KeyRefused,))


def _expiry(view: PgpKeyView) -> str:
    if view.expires_at is None:
        return "does not expire"
    if view.expired:
        return f"expired {view.expires_at:%Y-%m-%d %H:%M} UTC"
    left = plural(view.days_left or 0, "day")
    return f"expires {view.expires_at:%Y-%m-%d %H:%M} UTC ({left} left)"


def _describe(view: PgpKeyView) -> str:
    size = f"{view.algorithm} {view.bits}" if view.bits else view.algorithm
    return f"{view.fingerprint} ({size}, {', '.join(view.user_ids) or 'no user id'})"


def _for(view: PgpKeyView) -> str:
    if view.owner == "courier":
        return "Courier"
    return f"{view.scope} {view.account or view.feed}" if view.scope != "tenant" else "tenant"


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="Armored or binary key export; `-` reads standard input.", allow_dash=True
        ),
    ],
    tenant: Tenant,
    account: Annotated[
        str | None, typer.Option(help="Limit a partner key to this SFTP account.")
    ] = None,
    feed: Annotated[str | None, typer.Option(help="Limit a partner key to this feed.")] = None,
    owner: Annotated[
        str,
        typer.Option(
            help="partner: a partner's public key; courier: Courier's key pair for the "
            "tenant (secret key protected by COURIER_PGP_PASSPHRASE)."
        ),
    ] = "partner",
) -> None:
    """Import a partner's public key, or Courier's key pair for the tenant."""
    if str(file) == "-":
        data = sys.stdin.buffer.read()
    elif not file.is_file():
        err.print(f"[red]error:[/] no key file {file}", highlight=False)
        raise typer.Exit(1)
    else:
        data = file.read_bytes()
    passphrase = get_settings().pgp_passphrase
    done = _run(
        lambda db: pgp_keys.import_key(
            db, tenant, data, owner=owner, account=account, feed=feed,
            passphrase=passphrase, actor=actor(),
        )
    )  # fmt: skip
    view = done.view
    verb = "refreshed" if done.updated else "imported"
    who = "Courier's key pair" if view.owner == "courier" else f"partner key for {_for(view)}"
    console.print(
        f"{who} {_describe(view)} {verb} for {tenant}; it {_expiry(view)}", highlight=False
    )


@app.command("generate")
def generate(tenant: Tenant) -> None:
    """Make Courier's key pair for the tenant (ed25519/cv25519, 2 years), its secret key
    protected by COURIER_PGP_PASSPHRASE. An older pair keeps decrypting until removed."""
    passphrase = get_settings().pgp_passphrase
    done = _run(lambda db: pgp_keys.generate_key(db, tenant, passphrase=passphrase, actor=actor()))
    view = done.view
    console.print(
        f"Courier's key pair {_describe(view)} generated for {tenant}; it {_expiry(view)}",
        highlight=False,
    )
    console.print(
        f"give partners its public key: courier keys export-public --tenant {tenant}",
        highlight=False,
    )


@app.command("list")
def list_(
    tenant: Tenant,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what the console's API answers.")
    ] = False,
) -> None:
    """The tenant's keys with fingerprint, algorithm, user ids and expiry (days left)."""
    keys = _run(lambda db: pgp_keys.list_keys(db, tenant))
    if as_json:
        output.print_json(console, keys)
        return
    if not keys:
        console.print(f"tenant {tenant} has no OpenPGP keys", highlight=False)
        return
    output.table(
        console,
        ("fingerprint", "owner", "for", "algorithm", "user ids", "created", "expires", "days left"),
        [
            (
                k.fingerprint,
                k.owner,
                _for(k),
                f"{k.algorithm} {k.bits}" if k.bits else k.algorithm,
                k.user_ids,
                k.created_at,
                k.expires_at or "never",
                "expired" if k.expired else k.days_left,
            )
            for k in keys
        ],
    )


@app.command("remove")
def remove(
    fingerprint: Annotated[str, typer.Argument(help="As `courier keys list` shows it.")],
    tenant: Tenant,
) -> None:
    """Remove a key (audited). Files encrypted to a removed Courier key no longer open."""
    view = _run(lambda db: pgp_keys.remove_key(db, tenant, fingerprint, actor=actor()))
    console.print(f"{view.owner} key {view.fingerprint} removed from {tenant}", highlight=False)


@app.command("export-public")
def export_public(tenant: Tenant) -> None:
    """Print the tenant's Courier public key, armored: what partners encrypt to."""
    view, public = _run(lambda db: pgp_keys.courier_public_key(db, tenant))
    err.print(f"Courier's public key {_describe(view)}; it {_expiry(view)}", highlight=False)
    sys.stdout.write(public if public.endswith("\n") else public + "\n")
