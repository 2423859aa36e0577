"""OpenPGP keys in the console: Courier's key pair per tenant and partners' public keys,
with fingerprint, algorithm, user ids and expiry.

Views carry only public facts (`PgpKeyView`): neither a secret key nor the armored public
key reaches a page or the API. A customer sees their own tenant's keys only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Tenant
from courier.common.db.models_keys import PgpKey
from courier.common.pgp_keys import PgpKeyView, views
from courier.console.access import CurrentViewer, Viewer, scope
from courier.console.deps import Session


async def list_keys(
    s: AsyncSession,
    viewer: Viewer,
    *,
    tenant: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[PgpKeyView]:
    """The viewer's keys by tenant, Courier's before partners', newest first."""
    query = (
        select(PgpKey)
        .join(Tenant, Tenant.id == PgpKey.tenant_id)
        .where(scope(viewer, PgpKey.tenant_id))
        .order_by(Tenant.slug, PgpKey.owner, PgpKey.created_at.desc(), PgpKey.fingerprint)
        .limit(limit)
        .offset(offset)
    )
    if tenant:
        query = query.where(Tenant.slug == tenant)
    return await views(s, list(await s.scalars(query)))


router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.get("", response_model=list[PgpKeyView])
async def keys(
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[PgpKeyView]:
    return await list_keys(s, viewer, tenant=tenant, limit=limit, offset=offset)
