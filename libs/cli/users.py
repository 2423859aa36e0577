"""`courier users …`: the people who sign in to the console.

Changes go through `courier.common.console_users`, as the console's own pages do, and
are written to the console audit as `cli:<os user>`. A generated password or an
authenticator link is printed once, to the terminal only.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from courier.cli import output
from courier.cli.context import run_with_db
from courier.common import console_users
from courier.common.console_users import AccessError
from courier.common.db.engine import Database
from courier.common.passwords import generate_password

app = typer.Typer(no_args_is_help=True, help="Console users: roles, passwords, authenticators.")
console = output.Output()
err = output.Output(stderr=True)
T = TypeVar("T")
AsJson = Annotated[
    bool, typer.Option("--json", help="Print what the console's API answers (ids in full).")
]

Role = Annotated[str, typer.Option(help="admin, support or customer.")]
TenantOpt = Annotated[str | None, typer.Option(help="Tenant slug (customers only).")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin, not generate one.")
]


def actor() -> str:
    """Who the console audit names for a command: the operating-system user."""
    return f"cli:{getpass.getuser()}"


def run_access(fn: Callable[[AsyncSession], Awaitable[T]], *, change: bool = True) -> T:
    """Run `fn` in one transaction (or, not a `change`, one session); a refused change
    (unknown tenant, name taken, …) exits 2 with the reason."""

    async def _run(db: Database) -> T:
        async with db.transaction() if change else db.session() as s:
            return await fn(s)

    try:
        return run_with_db(_run)
    except AccessError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from exc


def _password(from_stdin: bool) -> tuple[str, bool]:
    """The password to set, and whether it was generated here (and so must be shown)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return generate_password(), True


def _show_once(label: str, value: str) -> None:
    # Never wrapped: a password or link broken across lines does not paste.
    console.print(f"{label} (shown once): {value}", highlight=False, soft_wrap=True)


@app.command("create")
def create(
    username: str,
    role: Role,
    tenant: TenantOpt = None,
    email: Annotated[str | None, typer.Option(help="Where to reach the person.")] = None,
    totp: Annotated[bool, typer.Option("--totp", help="Enroll an authenticator app.")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a user; a generated password (and --totp's set-up link) is printed once."""
    password, generated = _password(password_stdin)

    async def _create(s: AsyncSession) -> str | None:
        user = await console_users.create_user(
            s,
            username=username,
            role=role,
            password=password,
            tenant=tenant,
            email=email,
            totp=totp,
            by=actor(),
        )
        return console_users.totp_uri(user) if user.totp_secret else None

    uri = run_access(_create)
    console.print(f"user {username} created: {role}" + (f" of {tenant}" if tenant else ""))
    if generated:
        _show_once("password", password)
    if uri:
        _show_once("authenticator link", uri)


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """Users with role, tenant and state; never a password or a secret."""
    from courier.console.people import list_users

    users = run_access(list_users, change=False)
    if as_json:
        output.print_json(console, users)
        return
    output.table(
        console,
        ("username", "role", "tenant", "enabled", "totp", "last sign-in", "locked until"),
        [
            (u.username, u.role, u.tenant, u.enabled, u.totp, u.last_signin_at, u.locked_until)
            for u in users
        ],
    )


def _change(
    username: str, fn: Callable[..., Awaitable[object]], *args: object, done: str
) -> object:
    result = run_access(lambda s: fn(s, username, *args, by=actor()))
    console.print(done)
    return result


@app.command("disable")
def disable(username: str) -> None:
    """Stop a user signing in; their open sessions end."""
    _change(username, console_users.set_enabled, False, done=f"{username} disabled")


@app.command("enable")
def enable(username: str) -> None:
    """Let a user sign in again (also lifts a lockout)."""
    _change(username, console_users.set_enabled, True, done=f"{username} enabled")


@app.command("reset-password")
def reset_password(username: str, password_stdin: PasswordStdin = False) -> None:
    """Set a new password (generated and printed once, unless read from stdin)."""
    password, generated = _password(password_stdin)
    _change(
        username,
        console_users.reset_password,
        password,
        done=f"password of {username} changed; their sessions ended",
    )
    if generated:
        _show_once("password", password)


@app.command("set-role")
def set_role(username: str, role: str, tenant: TenantOpt = None) -> None:
    """Change what a user may do (admin, support, or customer of --tenant)."""
    _change(
        username,
        console_users.set_role,
        role,
        tenant,
        done=f"{username} is now {role}" + (f" of {tenant}" if tenant else ""),
    )


@app.command("enroll-totp")
def enroll_totp(username: str) -> None:
    """Give a user a new authenticator; the set-up link is printed once."""

    async def _enroll(s: AsyncSession) -> str:
        await console_users.enroll_totp(s, username, by=actor())
        user = await console_users.find_user(s, username)
        assert user is not None
        return console_users.totp_uri(user)

    uri = run_access(_enroll)
    console.print(f"{username} now signs in with an authenticator code")
    _show_once("authenticator link", uri)
