"""List pages: a page of rows at a time, newest (or first) first, with links to the
pages either side that keep the list's filters, and the tenants a filter offers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Tenant
from courier.console.access import Viewer
from courier.console.render import page

PAGE_SIZE = 50


def pager(
    path: str,
    filters: Mapping[str, str | None],
    offset: int,
    shown: int,
    size: int = PAGE_SIZE,
) -> dict[str, str]:
    """Links to the newer and older page of a list, keeping its filters."""
    kept = {k: v for k, v in filters.items() if v}
    links = {}
    if offset > 0:
        links["newer"] = f"{path}?{urlencode({**kept, 'offset': max(offset - size, 0)})}"
    if shown == size:
        links["older"] = f"{path}?{urlencode({**kept, 'offset': offset + size})}"
    return links


async def tenant_slugs(session: AsyncSession, viewer: Viewer) -> list[str]:
    """The tenants a staff viewer may filter by (a customer has only theirs: no filter)."""
    if not viewer.is_staff:
        return []
    return list(await session.scalars(select(Tenant.slug).order_by(Tenant.slug)))


@dataclass(frozen=True)
class TenantFilter:
    """The query of a list that staff narrow to one tenant by slug ("": every tenant)."""

    tenant: str
    offset: int


def _tenant_filter(
    tenant: str | None = None, offset: Annotated[int, Query(ge=0)] = 0
) -> TenantFilter:
    return TenantFilter(tenant or "", offset)


ByTenant = Annotated[TenantFilter, Depends(_tenant_filter)]


async def tenant_list(
    request: Request,
    s: AsyncSession,
    viewer: Viewer,
    q: TenantFilter,
    list_rows: Callable[..., Awaitable[Sequence[Any]]],
    template: str,
    size: int,
    **context: Any,
) -> HTMLResponse:
    """A page of the viewer's rows (`list_rows(s, viewer, tenant=, limit=, offset=)`),
    with the tenant filter and the links either side."""
    rows = await list_rows(s, viewer, tenant=q.tenant or None, limit=size, offset=q.offset)
    return page(
        request,
        template,
        viewer,
        rows=rows,
        tenant=q.tenant,
        links=pager(request.url.path, {"tenant": q.tenant}, q.offset, len(rows), size),
        **context,
    )
