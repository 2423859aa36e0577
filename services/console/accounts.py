"""SFTP accounts in the console: who may connect, from where, with which keys, and when
their password expires.

Views are built field by field from the rows, never from the whole row, so the password
hash (and its history) cannot reach a page or the API by accident. Key fingerprints are
the ones the gateway stored when the key was added (`courier accounts add-key`), which is
also what `courier accounts show` lists and what the gateway matches at login.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common import pgp_keys
from courier.common.db.models import SftpAccount, Tenant
from courier.common.db.models_gateway import AccountKey, PasswordPolicy
from courier.common.pgp_keys import PgpKeyView
from courier.console.access import CurrentViewer, Viewer, found_or_404, scope
from courier.console.deps import Session


class KeyView(BaseModel):
    algorithm: str
    # SHA256:… as `ssh-keygen -l` and `courier accounts show` print it.
    fingerprint: str
    comment: str | None
    added_at: datetime
    age_days: int
    # After this the gateway refuses the key; None: it does not expire.
    expires_at: datetime | None = None


class PolicyView(BaseModel):
    """The tenant's agreed password policy (None on the account: Courier's defaults)."""

    min_length: int
    min_classes: int
    history: int
    max_age_days: int
    warn_days: int


class AccountView(BaseModel):
    id: uuid.UUID
    username: str
    tenant: str
    enabled: bool
    # password+key | key | password
    auth_policy: str
    # Of upload (to /inbound), read, delete (in /outbound).
    permissions: list[str]
    quota_bytes: int | None
    allowed_cidrs: list[str]
    # Its allowlisted addresses are offered the legacy SSH algorithms too.
    legacy_algorithms: bool = False
    keys: list[KeyView]
    password_set: bool
    password_set_at: datetime | None
    password_expires_at: datetime | None
    # none | never expires | valid | expired
    password_state: str
    # The gateway has sent the partner a reminder for the current expiry.
    password_reminded: bool
    created_at: datetime
    password_policy: PolicyView | None = None
    # Partner OpenPGP keys limited to this account (the tenant's others: /api/keys).
    pgp_keys: list[PgpKeyView] = []


def _password_state(account: SftpAccount, now: datetime) -> str:
    if account.password_hash is None:
        return "none"
    if account.password_expires_at is None:
        return "never expires"
    return "expired" if account.password_expires_at <= now else "valid"


def _permissions(account: SftpAccount) -> list[str]:
    return [
        name
        for name, allowed in (
            ("upload", account.can_upload),
            ("read", account.can_read),
            ("delete", account.can_delete),
        )
        if allowed
    ]


def _view(
    account: SftpAccount,
    keys: list[AccountKey],
    policy: PasswordPolicy | None,
    pgp: list[PgpKeyView],
    now: datetime,
) -> AccountView:
    expires = account.password_expires_at
    return AccountView(
        id=account.id,
        username=account.username,
        tenant=account.tenant.slug,
        enabled=account.enabled,
        auth_policy=account.auth_policy,
        permissions=_permissions(account),
        quota_bytes=account.quota_bytes,
        allowed_cidrs=list(account.allowed_cidrs or []),
        legacy_algorithms=account.legacy_algorithms,
        keys=[
            KeyView(
                algorithm=k.algorithm,
                fingerprint=k.fingerprint,
                comment=k.comment,
                added_at=k.created_at,
                age_days=(now - k.created_at).days,
                expires_at=k.expires_at,
            )
            for k in keys
        ],
        password_set=account.password_hash is not None,
        password_set_at=account.password_set_at,
        password_expires_at=expires,
        password_state=_password_state(account, now),
        password_reminded=expires is not None and account.password_reminded_for == expires,
        created_at=account.created_at,
        password_policy=PolicyView(
            min_length=policy.min_length,
            min_classes=policy.min_classes,
            history=policy.history,
            max_age_days=policy.max_age_days,
            warn_days=policy.warn_days,
        )
        if policy is not None
        else None,
        pgp_keys=pgp,
    )


async def _views(s: AsyncSession, accounts: list[SftpAccount], now: datetime) -> list[AccountView]:
    ids = [a.id for a in accounts]
    keys: dict[uuid.UUID, list[AccountKey]] = defaultdict(list)
    policies: dict[uuid.UUID, PasswordPolicy] = {}
    pgp: dict[uuid.UUID, list[PgpKeyView]] = defaultdict(list)
    if ids:
        for key in await s.scalars(
            select(AccountKey)
            .where(AccountKey.account_id.in_(ids))
            .order_by(AccountKey.created_at, AccountKey.id)
        ):
            keys[key.account_id].append(key)
        tenant_ids = {a.tenant_id for a in accounts}
        policies = {
            p.tenant_id: p
            for p in await s.scalars(
                select(PasswordPolicy).where(PasswordPolicy.tenant_id.in_(tenant_ids))
            )
        }
        limited = await pgp_keys.keys_of(s, account_ids=ids)
        for row, view in zip(limited, await pgp_keys.views(s, limited, now), strict=True):
            if row.account_id is not None:
                pgp[row.account_id].append(view)
    return [_view(a, keys[a.id], policies.get(a.tenant_id), pgp[a.id], now) for a in accounts]


async def list_accounts(
    s: AsyncSession,
    viewer: Viewer,
    *,
    tenant: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[AccountView]:
    """The viewer's accounts by tenant and user name."""
    query = (
        select(SftpAccount)
        .join(Tenant, Tenant.id == SftpAccount.tenant_id)
        .where(scope(viewer, SftpAccount.tenant_id))
        .order_by(Tenant.slug, SftpAccount.username)
        .limit(limit)
        .offset(offset)
    )
    if tenant:
        query = query.where(Tenant.slug == tenant)
    accounts = list((await s.scalars(query)).unique())
    return await _views(s, accounts, datetime.now(UTC))


async def get_account(s: AsyncSession, viewer: Viewer, account_id: uuid.UUID) -> AccountView:
    """One account if the viewer may see it; another tenant's answers 404 as a missing one."""
    found = await s.scalars(
        select(SftpAccount).where(
            SftpAccount.id == account_id, scope(viewer, SftpAccount.tenant_id)
        )
    )
    account = found_or_404(found.first(), "account")
    (view,) = await _views(s, [account], datetime.now(UTC))
    return view


router = APIRouter(prefix="/api/accounts", tags=["accounts"])


@router.get("", response_model=list[AccountView])
async def accounts(
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[AccountView]:
    return await list_accounts(s, viewer, tenant=tenant, limit=limit, offset=offset)


@router.get("/{account_id}", response_model=AccountView)
async def account(account_id: uuid.UUID, s: Session, viewer: CurrentViewer) -> AccountView:
    return await get_account(s, viewer, account_id)
