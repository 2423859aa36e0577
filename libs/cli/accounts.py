"""`courier accounts …`: partners' SFTP accounts, keys, allowlists and password policy.

A generated password is printed once, to the terminal only; no password is logged.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from courier.cli import output, provision
from courier.cli.gateway import run_db
from courier.cli.users import actor
from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount
from courier.common.db.models_gateway import AccountKey
from courier.gateway import admin
from courier.gateway.algorithms import LEGACY_MIN_PREFIX

if TYPE_CHECKING:
    from courier.console.accounts import AccountView

app = typer.Typer(no_args_is_help=True, help="SFTP accounts.")
console = output.Output()
err = output.Output(stderr=True)
AsJson = Annotated[
    bool, typer.Option("--json", help="Print what the console's API answers (ids in full).")
]


def _key_text(value: str) -> str:
    """A key given as a file name (`~/.ssh/id_ed25519.pub`) or as the key line itself."""
    path = Path(value).expanduser()
    return path.read_text() if len(value) < 4096 and path.is_file() else value


Expires = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        help="Last day the key works (tenant's time zone); default: the tenant's key policy.",
    ),
]


def _expiry(when: datetime | None) -> str:
    return f"expires {when:%Y-%m-%d %H:%M} UTC" if when else "does not expire"


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


def _show_password(username: str, password: str | None) -> None:
    if password:
        console.print(f"password for {username} (shown once): {password}", highlight=False)


def _rights(account: SftpAccount) -> str:
    rights = [
        name
        for name, on in (
            ("upload", account.can_upload),
            ("read", account.can_read),
            ("delete", account.can_delete),
        )
        if on
    ]
    return ",".join(rights) or "none"


@app.command("create")
def create(
    username: str,
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    auth: Annotated[
        str, typer.Option(help="password+key (default), key or password.")
    ] = "password+key",
    key: Annotated[
        list[str] | None, typer.Option(help="Public key file or line; repeatable.")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option(help="Address or CIDR to connect from; repeatable.")
    ] = None,
    read_only: Annotated[bool, typer.Option(help="Download only.")] = False,
    upload_only: Annotated[bool, typer.Option(help="Upload only.")] = False,
    quota: Annotated[int | None, typer.Option(help="Bytes /inbound may hold.")] = None,
) -> None:
    """Create an SFTP account; a generated password meeting the policy is printed once."""
    if read_only and upload_only:
        err.print("[red]error:[/] --read-only and --upload-only exclude each other")
        raise typer.Exit(2)

    async def _create(db: Database) -> str | None:
        try:
            t = await provision.get_tenant(db, tenant)
        except provision.ProvisionError as exc:
            raise admin.AdminError(str(exc)) from exc
        _, password = await admin.create_account(
            db,
            t,
            username,
            auth_policy=auth,
            keys=[_key_text(k) for k in key or []],
            allow=allow or [],
            can_upload=not read_only,
            can_read=not upload_only,
            can_delete=not upload_only and not read_only,
            quota_bytes=quota,
        )
        return password

    password = run_db(_create)
    console.print(f"account {username} created for tenant {tenant} ({auth})")
    _show_password(username, password)
    if not allow:
        console.print("no address may connect yet: add one with `courier accounts allow-ip`")


async def _views(
    db: Database, *, tenant: str | None = None, username: str | None = None
) -> list[AccountView]:
    """Accounts as the console's API shows them to support (never a password hash)."""
    from courier.common.console_users import Principal
    from courier.console import accounts as views
    from courier.console.access import Viewer

    viewer = Viewer(Principal(name=actor(), role="support"))
    async with db.session() as s:
        if username is None:
            return await views.list_accounts(s, viewer, tenant=tenant, limit=100_000)
        account = await admin.get_account(s, username)
        return [await views.get_account(s, viewer, account.id)]


@app.command("list")
def list_(tenant: str | None = None, as_json: AsJson = False) -> None:
    """Accounts with their tenant, auth policy, rights and state."""
    accounts = run_db(lambda db: _views(db, tenant=tenant))
    if as_json:
        output.print_json(console, accounts)
        return
    output.table(
        console,
        ("username", "tenant", "auth", "rights", "allowed from", "expires", "state", "id"),
        [
            (
                a.username,
                a.tenant,
                a.auth_policy,
                ",".join(a.permissions) or "none",
                a.allowed_cidrs,
                a.password_expires_at.strftime("%Y-%m-%d") if a.password_expires_at else None,
                "enabled" if a.enabled else "disabled",
                a.id,
            )
            for a in accounts
        ],
    )


@app.command("show")
def show(username: str, as_json: AsJson = False) -> None:
    """One account: policy, rights, quota, allowlist, password dates and keys."""
    if as_json:
        output.print_json(console, run_db(lambda db: _views(db, username=username))[0])
        return

    async def _show(db: Database) -> tuple[SftpAccount, list]:  # type: ignore[type-arg]
        async with db.session() as s:
            account = await admin.get_account(s, username)
        return account, await admin.keys_of(db, username)

    account, keys = run_db(_show)
    console.print(f"[bold]{account.username}[/] (tenant {account.tenant.slug})")
    console.print(f"  state: {'enabled' if account.enabled else 'disabled'}")
    console.print(f"  auth: {account.auth_policy}; rights: {_rights(account)}")
    console.print(f"  quota: {account.quota_bytes or 'none'}")
    console.print(f"  allowed from: {', '.join(account.allowed_cidrs or []) or 'nowhere'}")
    console.print(f"  legacy algorithms: {'on' if account.legacy_algorithms else 'off'}")
    console.print(f"  password set: {account.password_set_at or '-'}")
    console.print(f"  password expires: {account.password_expires_at or 'never'}")
    for k in keys:
        console.print(
            f"  key: {k.algorithm} {k.fingerprint} {k.comment or ''} ({_expiry(k.expires_at)})",
            highlight=False,
        )


@app.command("set-password")
def set_password(
    username: str,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set a password chosen by the partner (checked against the tenant's policy)."""
    if stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    run_db(lambda db: admin.set_password(db, username, password))
    console.print(f"password of {username} changed")


@app.command("rotate-password")
def rotate_password(username: str) -> None:
    """Replace the password with a generated one, printed once."""
    password = run_db(lambda db: admin.set_password(db, username))
    _show_password(username, password)


@app.command("add-key")
def add_key(
    username: str,
    key: Annotated[str, typer.Argument(help="Public key file or line.")],
    expires: Expires = None,
    no_expiry: Annotated[
        bool, typer.Option("--no-expiry", help="The key never expires, whatever the policy.")
    ] = False,
) -> None:
    """Authorize a public key (ed25519, ECDSA, RSA ≥ 3072) until it expires."""
    if no_expiry and expires:
        err.print("[red]error:[/] --expires and --no-expiry exclude each other")
        raise typer.Exit(2)
    until = admin.NEVER if no_expiry else _day(expires)
    added: AccountKey = run_db(
        lambda db: admin.add_key(db, username, _key_text(key), expires=until)
    )
    console.print(
        f"key {added.fingerprint} added to {username}; it {_expiry(added.expires_at)}",
        highlight=False,
    )


@app.command("rotate-key")
def rotate_key(
    username: str,
    key: Annotated[str, typer.Argument(help="The new public key, file or line.")],
    overlap_days: Annotated[
        int, typer.Option(help="Days the old key(s) keep working alongside the new one.")
    ] = 14,
    expires: Expires = None,
) -> None:
    """Add a new key; the account's other keys expire after the overlap (never later
    than they would anyway)."""
    rotation = run_db(
        lambda db: admin.rotate_key(
            db,
            username,
            _key_text(key),
            overlap_days=overlap_days,
            expires=_day(expires),
            actor=actor(),
        )
    )
    added = rotation.added
    console.print(
        f"key {added.fingerprint} added to {username}; it {_expiry(added.expires_at)}",
        highlight=False,
    )
    for old in rotation.retired:
        was = f"was {_expiry(old.was)}" if old.was else "did not expire"
        console.print(
            f"key {old.fingerprint} now {_expiry(old.expires_at)} ({was})", highlight=False
        )
    if not rotation.retired:
        console.print("no older key to retire: every other key ends within the overlap")


@app.command("remove-key")
def remove_key(
    username: str, fingerprint: Annotated[str, typer.Argument(help="SHA256:… as listed.")]
) -> None:
    if not run_db(lambda db: admin.remove_key(db, username, fingerprint)):
        err.print(f"[red]error:[/] {username} has no key {fingerprint}")
        raise typer.Exit(1)
    console.print(f"key {fingerprint} removed from {username}", highlight=False)


@app.command("allow-ip")
def allow_ip(username: str, cidr: str) -> None:
    """Let the account connect from an address or CIDR range (IPv4 or IPv6)."""
    cidrs = run_db(lambda db: admin.change_allowlist(db, username, cidr, allow=True))
    console.print(f"{username} may connect from: {', '.join(cidrs)}")


@app.command("deny-ip")
def deny_ip(username: str, cidr: str) -> None:
    cidrs = run_db(lambda db: admin.change_allowlist(db, username, cidr, allow=False))
    console.print(f"{username} may connect from: {', '.join(cidrs) or 'nowhere'}")


@app.command("disable")
def disable(username: str) -> None:
    run_db(lambda db: admin.update(db, username, enabled=False))
    console.print(f"{username} disabled")


@app.command("enable")
def enable(username: str) -> None:
    run_db(lambda db: admin.update(db, username, enabled=True))
    console.print(f"{username} enabled")


@app.command("legacy-algorithms")
def legacy_algorithms(
    username: str,
    state: Annotated[str, typer.Argument(help="on or off.", metavar="on|off")],
) -> None:
    """Offer this account's addresses the legacy SSH algorithms (for clients that know no
    better), or stop; recorded in the console audit."""
    if state not in ("on", "off"):
        err.print("[red]error:[/] say on or off")
        raise typer.Exit(2)
    choice = run_db(
        lambda db: admin.set_legacy_algorithms(db, username, state == "on", actor=actor())
    )
    was = "" if choice.changed else " (already)"
    console.print(f"legacy algorithms {state} for {username}{was}", highlight=False)
    if choice.on:
        offered = ", ".join(choice.offered_to) or "no address yet"
        console.print(f"offered to: {offered}", highlight=False)
    v4, v6 = LEGACY_MIN_PREFIX[4], LEGACY_MIN_PREFIX[6]
    for cidr in choice.too_wide:
        console.print(
            f"not offered to {cidr}: too wide a range (legacy algorithms need /{v4} or "
            f"narrower for IPv4, /{v6} or narrower for IPv6)",
            highlight=False,
        )


@app.command("policy")
def policy(
    tenant: str,
    min_length: int | None = None,
    min_classes: Annotated[
        int | None, typer.Option(help="Of lower, upper, digits, symbols (1-4).")
    ] = None,
    history: Annotated[int | None, typer.Option(help="Earlier passwords refused.")] = None,
    max_age_days: Annotated[int | None, typer.Option(help="0 = never expire.")] = None,
    warn_days: Annotated[int | None, typer.Option(help="Alert this early.")] = None,
    key_max_age_days: Annotated[
        int | None, typer.Option(help="Default lifetime of a new SSH key; 0 = none.")
    ] = None,
) -> None:
    """Show or change a tenant's password policy (applies to passwords set from now on)."""

    async def _policy(db: Database):  # type: ignore[no-untyped-def]
        try:
            t = await provision.get_tenant(db, tenant)
        except provision.ProvisionError as exc:
            raise admin.AdminError(str(exc)) from exc
        return await admin.set_policy(
            db,
            t,
            min_length=min_length,
            min_classes=min_classes,
            history=history,
            max_age_days=max_age_days,
            warn_days=warn_days,
            key_max_age_days=key_max_age_days,
        )

    p = run_db(_policy)
    console.print(
        f"{tenant}: at least {p.min_length} characters and {p.min_classes} character classes; "
        f"last {p.history} passwords refused; "
        f"expire after {p.max_age_days or 'no'} days; alert {p.warn_days} days ahead; "
        f"new SSH keys expire after {p.key_max_age_days or 'no'} days"
    )
