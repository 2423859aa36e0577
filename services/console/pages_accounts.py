"""Account pages: SFTP accounts with their allowlists, keys and password dates, and the
tenants' OpenPGP keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from courier.console import accounts, keys, sessions
from courier.console.access import CurrentViewer
from courier.console.deps import Session
from courier.console.paging import ByTenant, tenant_list
from courier.console.render import page

PAGE = 100
# The account page shows this many of its latest gateway sessions.
RECENT_SESSIONS = 20

router = APIRouter(include_in_schema=False)


@router.get("/accounts", response_class=HTMLResponse)
async def account_list(
    request: Request, s: Session, viewer: CurrentViewer, q: ByTenant
) -> HTMLResponse:
    return await tenant_list(
        request, s, viewer, q, accounts.list_accounts, "accounts/list.html", PAGE
    )


@router.get("/accounts/{account_id}", response_class=HTMLResponse)
async def account_page(
    request: Request, account_id: uuid.UUID, s: Session, viewer: CurrentViewer
) -> HTMLResponse:
    account = await accounts.get_account(s, viewer, account_id)
    recent = await sessions.list_sessions(
        s, viewer=viewer, username=account.username, limit=RECENT_SESSIONS
    )
    return page(request, "accounts/detail.html", viewer, account=account, sessions=recent)


@router.get("/keys", response_class=HTMLResponse)
async def key_list(
    request: Request, s: Session, viewer: CurrentViewer, q: ByTenant
) -> HTMLResponse:
    """OpenPGP keys: Courier's key pair per tenant and partners' public keys."""
    return await tenant_list(request, s, viewer, q, keys.list_keys, "keys/list.html", PAGE)
