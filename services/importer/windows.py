"""Scheduled files applied at their feed's window, by the importer's own timer.

The importer owns imports, so it finds its own due work: every pass applies the
scheduled files whose `apply_at` has come, feed by feed and oldest first, each in
its own transaction under the feed's lock, recomputed against the data of that
moment as an approval is. The status changes from `scheduled` in that transaction,
so a second replica, a second pass or a pass cut off half-way applies nothing twice.
A file still waiting when its window has closed (the feed's lock was held all along,
an error, the importer down) raises one `import_window_missed` alert and waits for
the next window with the files behind it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.calendars import BusinessCalendar
from courier.common.db.models import Feed, Import, ReceivedFile, Tenant
from courier.common.events import AlertRaised
from courier.common.logging import get_logger
from courier.common.received import event_for
from courier.common.tasks import uninterrupted
from courier.common.uow import UnitOfWork
from courier.importer.apply import compute, conclude, spec_of
from courier.importer.changes import fingerprint
from courier.importer.schedule import HELD_BEHIND, Window, calendar_of, local_text, window_for
from courier.importer.spec import FeedSpec

log = get_logger(__name__)

CHANGED_AT_WINDOW = (
    "the data changed between the check and the window: "
    "applied with the change set computed at the window"
)


async def apply_due(uow: UnitOfWork) -> list[Import]:
    """Apply every scheduled file whose time has come, feed by feed, oldest first.

    Each file is its own transaction under the feed's lock, and is re-read there: a
    second replica (or a redelivered pass) finds it applied and leaves it.
    """
    now = uow.clock.now()
    async with uow:
        feed_ids = list(
            await uow.session.scalars(
                select(Import.feed_id)
                .where(
                    Import.status == "scheduled",
                    Import.apply_at <= now,
                    Import.feed_id.is_not(None),
                )
                .distinct()
            )
        )
    done: list[Import] = []
    for feed_id in feed_ids:
        try:
            while (imp := await _apply_next(uow, feed_id, now)) is not None:
                done.append(imp)
        except Exception as exc:  # one feed's trouble does not hold up another's window
            log.exception("scheduled file not applied", feed_id=str(feed_id), error=str(exc))
    return done


async def _apply_next(uow: UnitOfWork, feed_id: uuid.UUID, now: datetime) -> Import | None:
    """The feed's oldest scheduled file, applied if due (None: nothing more to do now)."""
    async with uow:
        await uow.lock(feed_id)
        session = uow.session
        waiting = list(
            (
                await session.scalars(
                    select(Import)
                    .where(Import.feed_id == feed_id, Import.status == "scheduled")
                    .order_by(Import.received_at, Import.id)
                )
            ).unique()
        )
        if not waiting or waiting[0].apply_at is None or waiting[0].apply_at > now:
            return None
        imp = waiting[0]
        feed = imp.feed
        assert feed is not None
        spec = spec_of(feed)
        closes = (imp.details or {}).get("window_closes_at")
        if closes is not None and datetime.fromisoformat(closes) <= now:
            await _missed(uow, feed, spec, waiting, now)
            return None
        row = await session.get(ReceivedFile, imp.file_id)
        assert row is not None
        event = event_for(row, row.tenant)
        if await _held_before(session, imp):
            # An earlier file was held at the window (the full-sync guard): keep the order.
            await compute(uow, imp, spec, apply=False, guarded=True, replace=True, hold=HELD_BEHIND)
            await conclude(uow, imp, event)
            return imp
        checked = dict(imp.details or {})
        await compute(uow, imp, spec, apply=True, guarded=imp.decision != "approve", replace=True)
        if imp.status in ("completed", "completed_with_errors"):
            notes = {"applied_at_window": checked.get("apply_at_local")}
            if await fingerprint(session, imp.id) != checked.get("plan_sha256"):
                notes["changed_since_check"] = CHANGED_AT_WINDOW
            imp.details = {**imp.details, **notes}
        await conclude(uow, imp, event)
    log.info("scheduled file applied", import_id=str(imp.id), status=imp.status)
    return imp


async def _held_before(session: AsyncSession, imp: Import) -> bool:
    earlier = await session.scalar(
        select(Import.id)
        .where(
            Import.feed_id == imp.feed_id,
            Import.status == "awaiting_approval",
            Import.received_at < imp.received_at,
        )
        .limit(1)
    )
    return earlier is not None


async def _missed(
    uow: UnitOfWork, feed: Feed, spec: FeedSpec, waiting: list[Import], now: datetime
) -> None:
    """The window closed with files still waiting: each raises one alert, and all wait
    for the next window (applied at once, in order, if the feed no longer has one)."""
    tenant = await uow.session.get(Tenant, feed.tenant_id)
    assert tenant is not None
    calendar = calendar_of(spec, tenant)
    nxt = window_for(spec.apply_window, calendar, now) if spec.apply_window else None
    for imp in waiting:
        details = dict(imp.details or {})
        if not details.get("window_missed_at"):
            details["window_missed_at"] = now.isoformat()
            uow.stage(_missed_alert(imp, feed, tenant, nxt, calendar))
            log.warning("scheduled file missed its window", import_id=str(imp.id))
        imp.apply_at = nxt.opens_at if nxt else now
        details["window_closes_at"] = nxt.closes_at.isoformat() if nxt else None
        details["apply_at_local"] = local_text(calendar, imp.apply_at)
        details["scheduled"] = (
            f"applies at {local_text(calendar, imp.apply_at)}: "
            "it was still waiting when its window closed"
        )
        imp.details = details


def _missed_alert(
    imp: Import, feed: Feed, tenant: Tenant, nxt: Window | None, calendar: BusinessCalendar
) -> AlertRaised:
    then = f"the next window, {local_text(calendar, nxt.opens_at)}" if nxt else "at once"
    return AlertRaised(
        kind="import_window_missed",
        # One incident per import, however many windows it misses.
        cause_key=f"import_window_missed:{imp.id}",
        tenant_id=tenant.id,
        tenant=tenant.slug,
        summary=(
            f"{imp.file_name} ({feed.name}) was still waiting when its apply window closed; "
            f"it will be applied {then}"
        ),
        details={
            "import_id": str(imp.id),
            "feed": feed.name,
            "file": imp.file_name,
            "apply_at": nxt.opens_at.isoformat() if nxt else None,
        },
    )


async def keep_applying(make_uow: Callable[[], UnitOfWork], every: float) -> None:
    """The timer: a pass every `every` seconds; a failed pass is retried by the next."""
    while True:
        try:
            await uninterrupted(apply_due(make_uow()))
        except Exception as exc:  # a database blip must not stop the importer
            log.exception("scheduled imports pass failed", error=str(exc))
        await asyncio.sleep(every)
