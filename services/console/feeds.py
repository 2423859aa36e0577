"""Feeds in the console: each feed's next expected window and last file, and its last
30 days (the monitor's windows and the importer's files) for the timeline picture.

Read-only: windows belong to the monitor and imports to the importer. Every query is
limited to the viewer's tenants in SQL, so another tenant's feed reads as a missing one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import Feed, Import, Tenant
from courier.common.db.models_incidents import ExpectationWindow
from courier.common.first_days import first_days_of
from courier.console import timeline
from courier.console.access import CurrentViewer, Viewer, found_or_404, scope
from courier.console.deps import Session

# The span of the timeline picture and of the tables under it.
HISTORY = timedelta(days=30)
# At most this many files of one feed are drawn and listed (a feed polled every minute).
MAX_FILES = 1000


class WindowView(BaseModel):
    id: uuid.UUID
    opens_at: datetime
    due_at: datetime
    closes_at: datetime
    # The monitor's state: open | satisfied | missed | cancelled
    state: str
    # How the console reads it: expected | on-time | late | missing | cancelled
    verdict: str
    file_name: str | None
    satisfied_at: datetime | None
    incident_id: uuid.UUID | None


class FileView(BaseModel):
    import_id: uuid.UUID
    file_name: str
    # The import's status (completed, rejected, failed, …)
    status: str
    # arrived | late | rejected | test (checked in full, applied nowhere, expected by no window)
    verdict: str
    received_at: datetime
    test: bool = False


class FirstDaysView(BaseModel):
    """`hold_for_approval: {live_days: N}`: where the feed's first days of approval stand."""

    live_days: int
    # The feed's first live file (None: none yet, the period has not begun).
    started_at: datetime | None
    # Business days of holding left, today included (0: over).
    days_left: int
    # The first day files flow without hold.
    ends_on: date | None
    text: str


class FeedSummary(BaseModel):
    id: uuid.UUID
    tenant: str
    name: str
    kind: str
    pattern: str
    enabled: bool
    # The zone its windows are laid out in (the feed's `expect`, else the tenant's).
    timezone: str
    next_window: WindowView | None
    last_file: FileView | None
    # When its files change data, e.g. "01:00-05:00 every day (Europe/London)" (None: on arrival).
    apply_window: str | None = None
    first_days: FirstDaysView | None = None


class FeedDetail(FeedSummary):
    # The feed's `expect` block: cron, window, warning, skipped dates (None: no schedule).
    schedule: dict[str, Any] | None
    since: datetime
    until: datetime
    # Newest first.
    windows: list[WindowView]
    files: list[FileView]


def _zone_name(feed: Feed, tenant: Tenant) -> str:
    """The zone the monitor lays the feed's windows out in, checked (unknown: UTC)."""
    name = ((feed.spec or {}).get("expect") or {}).get("timezone") or tenant.timezone or "UTC"
    try:
        ZoneInfo(name)
    except (ValueError, KeyError):
        return "UTC"
    return name


def first_days_view(feed: Feed, tenant: Tenant, now: datetime) -> FirstDaysView | None:
    period = first_days_of(feed, tenant, now)
    if period is None:
        return None
    return FirstDaysView(
        live_days=period.live_days,
        started_at=period.started_at,
        days_left=period.days_left,
        ends_on=period.ends_on,
        text=period.describe(),
    )


def apply_window_text(feed: Feed, tenant: Tenant) -> str | None:
    window = (feed.spec or {}).get("apply_window")
    if not window:
        return None
    days = "business days" if window.get("days") == "business" else "every day"
    zone = window.get("timezone") or tenant.timezone or "UTC"
    return f"{window['start'][:5]}-{window['end'][:5]} {days} ({zone})"


def _window(w: ExpectationWindow) -> timeline.Window:
    return timeline.Window(
        opens_at=w.opens_at,
        due_at=w.due_at,
        closes_at=w.closes_at,
        state=w.state,
        satisfied_at=w.satisfied_at,
        file_id=w.file_id,
        file_name=w.file_name,
    )


def _arrival(imp: Import) -> timeline.Arrival:
    return timeline.Arrival(
        at=imp.received_at, name=imp.file_name, status=imp.status, file_id=imp.file_id
    )


def window_view(w: ExpectationWindow, now: datetime) -> WindowView:
    return WindowView(
        id=w.id,
        opens_at=w.opens_at,
        due_at=w.due_at,
        closes_at=w.closes_at,
        state=w.state,
        verdict=timeline.window_kind(_window(w), now),
        file_name=w.file_name,
        satisfied_at=w.satisfied_at,
        incident_id=w.incident_id,
    )


def file_view(imp: Import, windows: list[timeline.Window]) -> FileView:
    return FileView(
        import_id=imp.id,
        file_name=imp.file_name,
        status=imp.status,
        verdict="test" if imp.test else timeline.arrival_kind(_arrival(imp), windows),
        received_at=imp.received_at,
        test=imp.test,
    )


async def _next_windows(
    s: AsyncSession, feed_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, ExpectationWindow]:
    """Each feed's earliest window that has not closed yet."""
    if not feed_ids:
        return {}
    first = (
        select(ExpectationWindow.feed_id, func.min(ExpectationWindow.due_at).label("due"))
        .where(
            ExpectationWindow.feed_id.in_(feed_ids),
            ExpectationWindow.state == "open",
            ExpectationWindow.closes_at > now,
        )
        .group_by(ExpectationWindow.feed_id)
        .subquery()
    )
    rows = await s.scalars(
        select(ExpectationWindow).join(
            first,
            (ExpectationWindow.feed_id == first.c.feed_id)
            & (ExpectationWindow.due_at == first.c.due),
        )
    )
    return {w.feed_id: w for w in rows}


async def _last_imports(s: AsyncSession, feed_ids: list[uuid.UUID]) -> dict[uuid.UUID, Import]:
    """Each feed's most recently received file."""
    if not feed_ids:
        return {}
    ranked = (
        select(
            Import.id,
            func.row_number()
            .over(partition_by=Import.feed_id, order_by=(Import.received_at.desc(), Import.id))
            .label("rank"),
        )
        # A test file says nothing of the feed's live deliveries.
        .where(Import.feed_id.in_(feed_ids), Import.test.is_(False))
        .subquery()
    )
    rows = await s.scalars(
        select(Import).join(ranked, Import.id == ranked.c.id).where(ranked.c.rank == 1)
    )
    return {imp.feed_id: imp for imp in rows.unique() if imp.feed_id is not None}


async def _windows_of_files(
    s: AsyncSession, feed_ids: list[uuid.UUID], file_ids: list[uuid.UUID]
) -> list[timeline.Window]:
    """The windows these files satisfied: whether a file came late is read from them.
    Asked by feed too, so the (feed, due) index finds them."""
    if not file_ids:
        return []
    rows = await s.scalars(
        select(ExpectationWindow).where(
            ExpectationWindow.feed_id.in_(feed_ids), ExpectationWindow.file_id.in_(file_ids)
        )
    )
    return [_window(w) for w in rows]


async def _summaries(
    s: AsyncSession, feeds: list[tuple[Feed, Tenant]], now: datetime
) -> list[FeedSummary]:
    """Each feed with its next window and last file, in a few queries for all of them."""
    ids = [feed.id for feed, _ in feeds]
    upcoming = await _next_windows(s, ids, now)
    last = await _last_imports(s, ids)
    windows = await _windows_of_files(s, ids, [imp.file_id for imp in last.values()])
    return [
        FeedSummary(
            id=feed.id,
            tenant=tenant.slug,
            name=feed.name,
            kind=feed.kind,
            pattern=feed.pattern,
            enabled=feed.enabled,
            timezone=_zone_name(feed, tenant),
            next_window=window_view(upcoming[feed.id], now) if feed.id in upcoming else None,
            last_file=file_view(last[feed.id], windows) if feed.id in last else None,
            apply_window=apply_window_text(feed, tenant),
            first_days=first_days_view(feed, tenant, now),
        )
        for feed, tenant in feeds
    ]


async def list_feeds(
    s: AsyncSession,
    viewer: Viewer,
    *,
    tenant: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[FeedSummary]:
    """The viewer's feeds by tenant and name, each with its next window and last file."""
    now = now or datetime.now(UTC)
    query = (
        select(Feed, Tenant)
        .join(Tenant, Tenant.id == Feed.tenant_id)
        .where(scope(viewer, Feed.tenant_id))
        .order_by(Tenant.slug, Feed.name)
        .limit(limit)
        .offset(offset)
    )
    if tenant:
        query = query.where(Tenant.slug == tenant)
    return await _summaries(s, [(feed, t) for feed, t in await s.execute(query)], now)


async def feed_detail(
    s: AsyncSession, viewer: Viewer, feed_id: uuid.UUID, now: datetime | None = None
) -> tuple[FeedDetail, timeline.Timeline]:
    """The feed's last 30 days, as data and as the timeline to draw; 404 if not visible."""
    now = now or datetime.now(UTC)
    found = (
        await s.execute(
            select(Feed, Tenant)
            .join(Tenant, Tenant.id == Feed.tenant_id)
            .where(Feed.id == feed_id, scope(viewer, Feed.tenant_id))
        )
    ).first()
    feed, tenant = found_or_404(found, "feed")
    since = now - HISTORY
    window_rows = list(
        await s.scalars(
            select(ExpectationWindow)
            .where(ExpectationWindow.feed_id == feed.id, ExpectationWindow.closes_at >= since)
            .order_by(ExpectationWindow.due_at.desc())
        )
    )
    files = list(
        (
            await s.scalars(
                select(Import)
                .where(Import.feed_id == feed.id, Import.received_at >= since)
                .order_by(Import.received_at.desc(), Import.id)
                .limit(MAX_FILES)
            )
        ).unique()
    )
    windows = [_window(w) for w in window_rows]
    # A late file can satisfy a window that closed before the span began.
    drawn = {w.file_id for w in windows}
    windows += await _windows_of_files(
        s, [feed.id], [imp.file_id for imp in files if imp.file_id not in drawn]
    )
    (summary,) = await _summaries(s, [(feed, tenant)], now)
    detail = FeedDetail(
        **summary.model_dump(),
        schedule=(feed.spec or {}).get("expect"),
        since=since,
        until=now,
        windows=[window_view(w, now) for w in window_rows],
        files=[file_view(imp, windows) for imp in files],
    )
    picture = timeline.Timeline(
        start=since,
        end=now,
        timezone=summary.timezone,
        windows=windows,
        arrivals=[_arrival(imp) for imp in files if not imp.test],
        label=f"{tenant.slug} / {feed.name}: expected windows and files, last 30 days",
    )
    return detail, picture


router = APIRouter(prefix="/api/feeds", tags=["feeds"])


@router.get("", response_model=list[FeedSummary])
async def feeds(
    s: Session,
    viewer: CurrentViewer,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[FeedSummary]:
    return await list_feeds(s, viewer, tenant=tenant, limit=limit, offset=offset)


@router.get("/{feed_id}", response_model=FeedDetail)
async def feed(feed_id: uuid.UUID, s: Session, viewer: CurrentViewer) -> FeedDetail:
    detail, _ = await feed_detail(s, viewer, feed_id)
    return detail
