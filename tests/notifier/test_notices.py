"""The notifier pages for the notices the monitor announced (`courier.notice.raised`,
through the outbox), each once, and for nothing it was not told about."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, insert, select

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.db.models_incidents import Notice, Notification, SlaPolicy
from courier.common.events import NOTICES_PER_EVENT, NoticesRaised
from courier.common.settings import Settings
from courier.monitor.incidents import Signal, record_signals
from courier.notifier.deliver import route_notices
from courier.notifier.rota import Rota
from tests.support.paging import Sns, announced
from tests.support.paging_fixtures import ANA
from tests.support.services import at_once, eventually, running


def _signal(tenant: Tenant, summary: str) -> Signal:
    return Signal(
        kind="import_failed",
        cause_key=f"{tenant.id}|{uuid.uuid4()}",
        event_key=f"test:{uuid.uuid4()}",
        summary=summary,
        tenant_id=tenant.id,
        tenant=tenant.slug,
    )


async def test_a_committed_incident_pages_through_the_outbox_and_an_unannounced_notice_never(
    paging: Settings, db: Database, tenant: Tenant, rota: Rota, clock: ManualClock, sns: Sns
) -> None:
    # The notifier would otherwise look only once an hour.
    hourly = paging.model_copy(update={"notifier_tick_seconds": 3600})
    async with running("notifier", hourly, clock):
        async with db.transaction() as s:
            # A row no event announced: nobody asked the notifier to send it.
            await s.execute(
                insert(Notice.__table__),
                [{"reason": "opened", "created_at": clock.now(),
                  "payload": {"kind": "import_failed", "summary": "stray notice"}}],
            )  # fmt: skip
        async with db.transaction() as s:
            await record_signals(s, [_signal(tenant, "import of a.csv failed")], clock.now(),
                                 SlaPolicy())  # fmt: skip
        # Any service's outbox relay publishes the event; the notifier consumes it.
        texts = await eventually(lambda: at_once(sns.to(ANA)))
        await asyncio.sleep(1)
    assert len(texts) == 1 and "import of a.csv failed" in texts[0]
    assert not any("stray" in t for t in sns.to(ANA))
    async with db.session() as s:
        unrouted = list(await s.scalars(select(Notice.reason).where(Notice.routed_at.is_(None))))
    assert unrouted == ["opened"]


async def test_an_announcement_delivered_again_plans_no_second_message(
    paging: Settings, db: Database, tenant: Tenant, rota: Rota, clock: ManualClock
) -> None:
    async with db.transaction() as s:
        await record_signals(s, [_signal(tenant, "import of b.csv failed")], clock.now(),
                             SlaPolicy())  # fmt: skip
    (ids,) = await announced(db)
    first = await route_notices(db, clock.now(), rota, paging, ids)
    again = await route_notices(db, clock.advance(minutes=1), rota, paging, ids)
    async with db.session() as s:
        planned = await s.scalar(select(func.count()).select_from(Notification))
    assert first == planned and first > 0
    assert again == 0


async def test_a_large_batch_is_announced_in_bounded_events_covering_every_notice(
    db: Database, tenant: Tenant, clock: ManualClock
) -> None:
    n = NOTICES_PER_EVENT + 5
    async with db.transaction() as s:
        await record_signals(
            s, [_signal(tenant, f"import {i} failed") for i in range(n)], clock.now(), SlaPolicy()
        )
    batches = await announced(db)
    async with db.session() as s:
        ids = sorted(await s.scalars(select(Notice.id)))
    assert [len(b) for b in batches] == [NOTICES_PER_EVENT, 5]
    assert sorted(i for b in batches for i in b) == ids
    # Content-derived ids: the same notices announced twice are one message on the bus.
    again = NoticesRaised.batches(list(reversed(ids)))
    assert [e.msg_id() for e in again] == [NoticesRaised(notice_ids=b).msg_id() for b in batches]
