"""Account lookup and password verification for SFTP logins."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount, Tenant
from courier.common.passwords import verify_password


@dataclass(frozen=True)
class Principal:
    """Who is logged in, as the SFTP layer needs to know it."""

    username: str
    tenant: Tenant


async def check_password(db: Database, username: str, password: str) -> Principal | None:
    async with db.session() as session:
        account = await session.scalar(select(SftpAccount).where(SftpAccount.username == username))
    # argon2 is deliberately slow: keep it off the event loop.
    ok = await asyncio.to_thread(
        verify_password, account.password_hash if account else None, password
    )
    if account is None or not ok or not account.enabled:
        return None
    return Principal(username=account.username, tenant=account.tenant)
