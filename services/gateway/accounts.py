"""What a login needs to know about an account, read once per connection."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from courier.common.db.engine import Database
from courier.common.db.models import SftpAccount, Tenant
from courier.common.db.models_gateway import AccountKey
from courier.gateway.algorithms import narrow_enough

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Factors an auth policy asks for, in the words of the SSH methods that prove them.
POLICIES: dict[str, frozenset[str]] = {
    "password+key": frozenset({"password", "publickey"}),
    "key": frozenset({"publickey"}),
    "password": frozenset({"password"}),
}


def networks(cidrs: list[str]) -> list[Network]:
    out: list[Network] = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue  # refused by the admin commands; ignore rather than open up
    return out


def address_in(address: str, nets: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in nets)


@dataclass(frozen=True)
class Principal:
    """Who is logged in, and what they may do, as the SFTP layer needs to know it."""

    account_id: uuid.UUID
    username: str
    tenant: Tenant
    password_hash: str | None
    enabled: bool
    factors: frozenset[str]
    # SHA256 fingerprint of each authorized key, and when it expires (None: never).
    keys: dict[str, datetime | None]
    allowed: list[Network] = field(default_factory=list)
    can_upload: bool = True
    can_read: bool = True
    can_delete: bool = True
    quota_bytes: int | None = None
    password_expires_at: datetime | None = None

    def allows(self, address: str) -> bool:
        return address_in(address, self.allowed)


async def load_principal(db: Database, username: str) -> Principal | None:
    async with db.session() as session:
        account = await session.scalar(select(SftpAccount).where(SftpAccount.username == username))
        if account is None:
            return None
        keys = await session.execute(
            select(AccountKey.fingerprint, AccountKey.expires_at).where(
                AccountKey.account_id == account.id
            )
        )
        return Principal(
            account_id=account.id,
            username=account.username,
            tenant=account.tenant,
            password_hash=account.password_hash,
            enabled=account.enabled,
            factors=POLICIES.get(account.auth_policy, POLICIES["password+key"]),
            keys={fingerprint: expires for fingerprint, expires in keys},
            allowed=networks(account.allowed_cidrs or []),
            can_upload=account.can_upload,
            can_read=account.can_read,
            can_delete=account.can_delete,
            quota_bytes=account.quota_bytes,
            password_expires_at=account.password_expires_at,
        )


async def allowed_networks(db: Database) -> list[Network]:
    """Every address range some enabled account may connect from (checked before login)."""
    async with db.session() as session:
        rows = await session.scalars(
            select(SftpAccount.allowed_cidrs).where(SftpAccount.enabled.is_(True))
        )
        cidrs = sorted({c for row in rows for c in (row or [])})
    return networks(cidrs)


async def legacy_networks(db: Database) -> list[Network]:
    """The allowlisted ranges of enabled accounts with legacy algorithms on.

    A range too wide to be one partner's (see `algorithms.LEGACY_MIN_PREFIX`) is left
    out, so an allowlist opened up later cannot offer the legacy set to everyone.
    """
    async with db.session() as session:
        rows = await session.scalars(
            select(SftpAccount.allowed_cidrs).where(
                SftpAccount.enabled.is_(True), SftpAccount.legacy_algorithms.is_(True)
            )
        )
        cidrs = sorted({c for row in rows for c in (row or [])})
    return [net for net in networks(cidrs) if narrow_enough(net)]
