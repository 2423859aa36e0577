"""`courier tokens …`: bearer tokens for the console's JSON API.

A token is printed once when made; Courier keeps only its digest, so a lost token
is revoked and replaced, never shown again.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from courier.cli import output
from courier.cli.users import AsJson, Role, TenantOpt, actor, run_access
from courier.common import console_users

app = typer.Typer(no_args_is_help=True, help="API tokens for the console's JSON API.")
console = output.Output()


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What uses the token, e.g. the BI export job.")],
    role: Role,
    tenant: TenantOpt = None,
    expires_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
) -> None:
    """Create a token scoped by role (and tenant); it is printed once."""

    async def _create(s: AsyncSession) -> tuple[str, str]:
        token, secret = await console_users.create_token(
            s, name=name, role=role, tenant=tenant, expires_days=expires_days, by=actor()
        )
        return str(token.id), secret

    token_id, secret = run_access(_create)
    console.print(
        f"token {name} ({token_id}) created: {role}" + (f" of {tenant}" if tenant else "")
    )
    console.print(f"token: {secret}", highlight=False, soft_wrap=True)
    console.print(
        "[yellow]Copy it now: it is not shown again.[/] Send it as 'Authorization: Bearer <token>'."
    )


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """Tokens with their scope and use; never the token or its digest."""
    from courier.console.people import list_tokens

    tokens = run_access(list_tokens, change=False)
    if as_json:
        output.print_json(console, tokens)
        return
    output.table(
        console,
        ("id", "name", "prefix", "role", "tenant", "created", "last used", "expires", "revoked"),
        [
            (t.id, t.name, t.prefix, t.role, t.tenant,
             t.created_at, t.last_used_at, t.expires_at, t.revoked_at)
            for t in tokens
        ],
    )  # fmt: skip


@app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="Its id, or the prefix `list` shows.")],
) -> None:
    """Revoke a token at once: the next request with it is refused."""

    async def _revoke(s: AsyncSession) -> str:
        found = await console_users.revoke_token(s, token, by=actor())
        return f"{found.name} ({found.prefix}…)"

    console.print(f"token {run_access(_revoke)} revoked")
