"""Expected-file windows: laid out ahead from each feed's `expect` cron, satisfied by a
file the importer took for the feed, warned about before they close and turned into
`missing_file` when they close empty.

A window is [due - window, due + window]: a file may come early by as much as it may come
late. The cron runs in the feed's time zone, else the tenant's. A feed on business days
gets no window on the tenant's weekends, public holidays and closures (its business
calendar); dates in `skip_dates` and, with `skip_weekends`, weekends get none either. All
of them are judged by the due time's date in that zone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import ValidationError
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.calendars import BusinessCalendar
from courier.common.db.engine import Database
from courier.common.db.models import Feed, ReceivedFile, Tenant
from courier.common.db.models_incidents import ExpectationWindow, SlaPolicy
from courier.common.events import FileRejected, ImportCompleted, ImportFailed
from courier.common.logging import get_logger
from courier.common.specs import Expectation
from courier.monitor.incidents import Opened, Signal, add_notices, record_signals, resolve_open

log = get_logger(__name__)

# Small batches let the notifier page for the first windows while later ones still close.
BATCH = 500


def expectation_of(feed: Feed) -> Expectation | None:
    raw = (feed.spec or {}).get("expect")
    if not raw:
        return None
    try:
        return Expectation.model_validate(raw)
    except ValidationError as exc:
        log.warning("feed has an invalid expectation", feed=feed.name, error=str(exc))
        return None


def calendar_for(tenant: Any, expect: Expectation) -> BusinessCalendar:
    """The calendar a feed's windows are laid out by: the tenant's, in the feed's zone
    if it sets one."""
    return BusinessCalendar.of(tenant, expect.timezone)


def due_times(
    expect: Expectation,
    start: datetime,
    end: datetime,
    calendar: BusinessCalendar | None = None,
) -> Iterator[datetime]:
    """Cron fire times in (start, end], in UTC, on the days the feed expects a file
    (`calendar`: the tenant's, see `calendar_for`; none: no holidays, the feed's zone)."""
    calendar = calendar or BusinessCalendar(timezone=expect.timezone or "UTC")
    skip = set(expect.skip_dates)
    it = croniter(expect.cron, start.astimezone(calendar.zone))
    while True:
        local: datetime = it.get_next(datetime)
        if local > end:
            return
        day = local.date()
        if (
            day in skip
            or (expect.skip_weekends and local.weekday() >= 5)
            or (expect.days == "business" and not calendar.is_business_day(day))
        ):
            continue
        yield local.astimezone(ZoneInfo("UTC"))


def plan_key(feed: Feed, calendar: BusinessCalendar) -> str:
    """What a feed's windows are laid out from: its expectation and the tenant's zone and
    calendar. Windows with another key were laid out before a change to one of them."""
    basis = {
        "expect": (feed.spec or {}).get("expect"),
        "timezone": calendar.timezone,
        "country": calendar.country,
        "subdivision": calendar.subdivision,
        "closures": sorted(d.isoformat() for d in calendar.closures),
    }
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def window_for(
    feed: Feed, expect: Expectation, due: datetime, key: str | None = None
) -> ExpectationWindow:
    span = timedelta(minutes=expect.window_minutes)
    closes = due + span
    return ExpectationWindow(
        id=uuid.uuid4(),
        tenant_id=feed.tenant_id,
        feed_id=feed.id,
        due_at=due,
        opens_at=due - span,
        warn_at=closes - timedelta(minutes=expect.warn_before_minutes),
        closes_at=closes,
        state="open",
        plan_key=key,
    )


async def plan_windows(db: Database, now: datetime, horizon: timedelta) -> int:
    """Add the windows due between now and the horizon that are not there yet.

    Each feed continues from its latest window, so a window is never laid out twice;
    the unique (feed, due) constraint settles a race between two replicas. When what a
    feed's windows were laid out from has changed since (its expectation, the tenant's
    zone, public holidays or closures: `plan_key`), the windows that have not opened
    yet are laid out again, so a closure set for tomorrow takes tomorrow's window away
    and a day reopened gets one back. Windows already open keep their terms.
    """
    added = 0
    async with db.transaction() as session:
        feeds = (
            await session.execute(
                select(Feed, Tenant)
                .join(Tenant, Tenant.id == Feed.tenant_id)
                .where(Feed.enabled.is_(True))
            )
        ).all()
        latest = dict(
            (
                await session.execute(
                    select(ExpectationWindow.feed_id, func.max(ExpectationWindow.due_at)).group_by(
                        ExpectationWindow.feed_id
                    )
                )
            ).all()
        )
        ahead: dict[uuid.UUID, set[str | None]] = {}
        for feed_id, key in await session.execute(
            select(ExpectationWindow.feed_id, ExpectationWindow.plan_key)
            .where(ExpectationWindow.state == "open", ExpectationWindow.opens_at > now)
            .distinct()
        ):
            ahead.setdefault(feed_id, set()).add(key)
        for feed, tenant in feeds:
            if not (feed.spec or {}).get("expect"):
                continue
            expect = expectation_of(feed)
            if expect is None:
                continue
            calendar = calendar_for(tenant, expect)
            key = plan_key(feed, calendar)
            start = latest.get(feed.id)
            if ahead.get(feed.id, {key}) != {key}:
                start = await _withdraw_unopened(session, feed.id, now)
            elif start is not None and start >= now + horizon / 2:
                continue  # laid out well ahead: no cron arithmetic this time
            # A feed seen for the first time starts with windows still open now.
            start = start or now - timedelta(minutes=expect.window_minutes)
            for due in due_times(expect, start, now + horizon, calendar):
                session.add(window_for(feed, expect, due, key))
                added += 1
    return added


async def _withdraw_unopened(
    session: AsyncSession, feed_id: uuid.UUID, now: datetime
) -> datetime | None:
    """Remove a feed's windows that have not opened yet; returns the latest left."""
    await session.execute(
        delete(ExpectationWindow).where(
            ExpectationWindow.feed_id == feed_id,
            ExpectationWindow.state == "open",
            ExpectationWindow.opens_at > now,
        )
    )
    return await session.scalar(
        select(func.max(ExpectationWindow.due_at)).where(ExpectationWindow.feed_id == feed_id)
    )


Arrived = ImportCompleted | ImportFailed | FileRejected
"""What the importer says about a file: each names the feed that took it (if any)."""


async def _feed_of(session: AsyncSession, event: Arrived) -> Feed | None:
    """The feed the importer chose (`feed_id`; by tenant and feed name from an importer
    that does not send the id yet). The monitor never matches names itself."""
    if event.feed_id is not None:
        feed = await session.get(Feed, event.feed_id)
        return feed if feed is not None and feed.tenant_id == event.tenant_id else None
    if not event.feed:
        return None
    return await session.scalar(
        select(Feed).where(Feed.tenant_id == event.tenant_id, Feed.name == event.feed)
    )


async def _received_at(session: AsyncSession, event: Arrived) -> datetime:
    """When the file arrived: from the event, else the ledger, else the event's time."""
    if event.received_at is not None:
        return event.received_at
    row = await session.get(ReceivedFile, event.file_id)
    return row.received_at if row is not None else event.occurred_at


async def on_file_arrived(db: Database, event: Arrived, now: datetime) -> list[str]:
    """A file the importer took for a feed (imported, held, a duplicate, even rejected
    for its content: it came) satisfies the latest window of that feed that had opened
    when it arrived; a file for a window that already closed resolves its
    `missing_file` incident with a note. A file no feed took satisfies nothing.

    The same file reported again (its rejection and its failure, an approval after
    the hold, a redelivery) changes nothing: a window already names it. A test file
    (`event.test`) is not the file a window waits for.
    """
    if event.test:
        return []
    async with db.transaction() as session:
        feed = await _feed_of(session, event)
        if feed is None:
            return []
        received = await _received_at(session, event)
        window = await session.scalar(
            select(ExpectationWindow)
            .where(
                ExpectationWindow.feed_id == feed.id,
                ExpectationWindow.state.in_(("open", "missed")),
                ExpectationWindow.opens_at <= received,
            )
            .order_by(ExpectationWindow.due_at.desc())
            .limit(1)
            .with_for_update()
        )
        # Asked with the window locked, so a report of the same file in flight elsewhere
        # has committed (or not started) by now.
        seen = await session.scalar(
            select(ExpectationWindow.id)
            .where(ExpectationWindow.feed_id == feed.id, ExpectationWindow.file_id == event.file_id)
            .limit(1)
        )
        if window is None or seen is not None:
            return []
        missed = window.state == "missed"
        window.state, window.satisfied_at = "satisfied", received
        window.file_id, window.file_name = event.file_id, event.name
        # Earlier missed windows of this feed are covered by the same (late) file.
        earlier = (
            await session.scalars(
                update(ExpectationWindow)
                .where(
                    ExpectationWindow.feed_id == feed.id,
                    ExpectationWindow.state == "missed",
                    ExpectationWindow.due_at < window.due_at,
                )
                .values(state="satisfied", satisfied_at=received, file_id=event.file_id)
                .returning(ExpectationWindow.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not (missed or earlier):
            return [f"satisfied:{feed.name}"]
        due = f"the window due {window.due_at:%Y-%m-%d %H:%M} UTC"
        if missed and received <= window.closes_at:
            # On time, but its import finished only after the window had closed.
            note = (
                f"file {event.name} arrived {received:%Y-%m-%d %H:%M} UTC, within {due}; "
                "it was processed after the window closed"
            )
        else:
            note = f"late file {event.name} arrived {received:%Y-%m-%d %H:%M} UTC for {due}"
        await resolve_open(session, [f"missing_file|{_cause(feed)}"], now, "monitor", note)
        return [f"resolved:{feed.name}"]


# What a `missing_file` signal says about its feed, read as plain columns (no ORM objects).
_FEED_COLUMNS = (
    Feed.id,
    Feed.name,
    Feed.pattern,
    Feed.spec,
    Feed.tenant_id,
    Tenant.slug,
    Tenant.timezone,
)


def _cause(feed: Any) -> str:
    return f"{feed.tenant_id}|{feed.id}"


async def close_due_windows(
    db: Database,
    now: datetime,
    policy: SlaPolicy,
    workers: int = 1,
) -> int:
    """Windows that closed without a file become `missing_file` incidents, once each:
    the state change from open to missed is the claim, so no replica repeats it.

    Set-based because thousands of windows close in the same minute: one UPDATE ...
    RETURNING claims a batch, one SELECT reads its feeds and tenants as plain columns,
    the incidents go out as bulk INSERTs. `workers` batches run at once (on PostgreSQL
    SKIP LOCKED keeps them apart, as it keeps replicas apart); each batch's notices are
    staged with it, so the notifier hears of a batch as soon as it commits.
    """

    async def drain() -> int:
        total = 0
        while True:
            closed, full = await _close_batch(db, now, policy)
            total += closed
            if not full:
                return total

    return sum(await asyncio.gather(*(drain() for _ in range(max(workers, 1)))))


async def _close_batch(db: Database, now: datetime, policy: SlaPolicy) -> tuple[int, bool]:
    """Close one batch; returns how many windows it closed and whether the batch was full."""
    async with db.transaction() as session:
        # Locked by a statement of its own: as a subquery of the UPDATE, PostgreSQL may
        # run it again while rechecking a row another batch changed, and one batch would
        # then take far more than BATCH windows.
        due = list(
            await session.scalars(
                select(ExpectationWindow.id)
                .where(ExpectationWindow.state == "open", ExpectationWindow.closes_at <= now)
                .order_by(ExpectationWindow.closes_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if not due:
            return 0, False
        claimed = (
            await session.execute(
                update(ExpectationWindow)
                .where(ExpectationWindow.id.in_(due), ExpectationWindow.state == "open")
                .values(state="missed")
                .returning(
                    ExpectationWindow.id,
                    ExpectationWindow.feed_id,
                    ExpectationWindow.due_at,
                    ExpectationWindow.closes_at,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not claimed:
            return 0, False
        feeds = {
            row.id: row
            for row in await session.execute(
                select(*_FEED_COLUMNS)
                .join(Tenant, Tenant.id == Feed.tenant_id)
                .where(Feed.id.in_({w.feed_id for w in claimed}))
            )
        }
        pairs = [(w, feeds[w.feed_id]) for w in claimed if w.feed_id in feeds]
        signals = [_missing(w, feed) for w, feed in pairs]
        opened = await record_signals(session, signals, now, policy)
        await _link(session, [(w.id, f"missing_file|{_cause(f)}") for w, f in pairs], opened)
    return len(pairs), len(due) >= BATCH


async def _link(
    session: AsyncSession, windows: list[tuple[uuid.UUID, str]], opened: list[Opened]
) -> None:
    """Point each window at the incident it opened. A window's incident takes the
    window's id, so the common case is one set-based UPDATE rather than one per row."""
    by_key = {i.open_key: i.id for i in opened}
    own = [wid for wid, key in windows if by_key.get(key) == wid]
    folded = [
        {"wid": wid, "iid": by_key[key]}
        for wid, key in windows
        if key in by_key and by_key[key] != wid
    ]
    table = ExpectationWindow.__table__
    if own:
        await session.execute(
            table.update().where(table.c.id.in_(own)).values(incident_id=table.c.id)
        )
    if folded:
        await session.execute(
            table.update()
            .where(table.c.id == bindparam("wid"))
            .values(incident_id=bindparam("iid")),
            folded,
        )


def _missing(window: Any, feed: Any, window_id: uuid.UUID | None = None) -> Signal:
    """`window`: a row with due_at, closes_at (and id); `feed`: a row of `_FEED_COLUMNS`."""
    # The spec was validated when applied; re-validating (cron parsing) per window is
    # what would make a busy minute slow.
    wid = window_id or window.id
    tz = _feed_zone(feed)
    due_local = window.due_at.astimezone(tz)
    closes_local = window.closes_at.astimezone(tz)
    return Signal(
        kind="missing_file",
        cause_key=_cause(feed),
        event_key=f"window:{wid}",
        # The incident a window opens takes its id: see `_link`.
        incident_id=wid,
        summary=(
            f"no file for feed {feed.name} ({feed.pattern}) expected "
            f"{due_local:%Y-%m-%d %H:%M} {tz.key}; window closed {closes_local:%H:%M}"
        ),
        tenant_id=feed.tenant_id,
        tenant=feed.slug,
        feed=feed.name,
        details={
            "pattern": feed.pattern,
            "expected_at": due_local.isoformat(),
            "window_closed_at": closes_local.isoformat(),
            "timezone": tz.key,
        },
        contacts=list((feed.spec or {}).get("contacts") or []),
    )


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _feed_zone(feed: Any) -> ZoneInfo:
    """The zone a feed's windows read in: its `expect.timezone`, else its tenant's."""
    return _zone(((feed.spec or {}).get("expect") or {}).get("timezone") or feed.timezone)


async def warn_due_windows(db: Database, now: datetime) -> int:
    """Before a window closes, remind the feed's contacts that nothing has come yet."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(
                    ExpectationWindow.id.label("window_id"),
                    ExpectationWindow.due_at,
                    ExpectationWindow.closes_at,
                    *_FEED_COLUMNS,
                )
                .join(Feed, Feed.id == ExpectationWindow.feed_id)
                .join(Tenant, Tenant.id == Feed.tenant_id)
                .where(
                    ExpectationWindow.state == "open",
                    ExpectationWindow.warned_at.is_(None),
                    ExpectationWindow.warn_at <= now,
                    ExpectationWindow.closes_at > now,
                )
                .limit(BATCH)
            )
        ).all()
        if not rows:
            return 0
        claimed = set(
            await session.scalars(
                update(ExpectationWindow)
                .where(
                    ExpectationWindow.id.in_([r.window_id for r in rows]),
                    ExpectationWindow.warned_at.is_(None),
                )
                .values(warned_at=now)
                .returning(ExpectationWindow.id)
                .execution_options(synchronize_session=False)
            )
        )
        notices = []
        for row in rows:
            contacts = list((row.spec or {}).get("contacts") or [])
            if row.window_id not in claimed or not contacts:
                continue
            sig = _missing(row, row, window_id=row.window_id)
            tz = _feed_zone(row)
            due, closes = row.due_at.astimezone(tz), row.closes_at.astimezone(tz)
            notices.append(
                {
                    "reason": "window_warning",
                    "created_at": now,
                    "payload": {
                        "kind": "missing_file",
                        "class": "partner",
                        "tenant": row.slug,
                        "feed": row.name,
                        "file": None,
                        "summary": (
                            f"no file yet for feed {row.name} ({row.pattern}) expected "
                            f"{due:%Y-%m-%d %H:%M} {tz.key}; the window closes at "
                            f"{closes:%H:%M} {tz.key}"
                        ),
                        "details": {
                            **{k: v for k, v in sig.details.items() if k != "window_closed_at"},
                            "window_closes_at": closes.isoformat(),
                        },
                        "contacts": contacts,
                    },
                }
            )
        await add_notices(session, notices)
        return len(claimed)
