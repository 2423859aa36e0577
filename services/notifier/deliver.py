"""The notifier's three steps, each a plain function over the database:

- `route_notices`: the notices a `courier.notice.raised` event names become rows of the
  delivery log (who, which channel, what text), rate-limited per incident and recipient;
- `send_due`: pending rows go to the SMS provider or the SMTP server, with retries; many
  pages for one person in one pass go out as one digest SMS, since a phone that buzzes
  ten thousand times is a phone nobody reads;
- `escalate_due`: a page nobody acknowledged in time goes to the next person in the rota.

Claims are conditional UPDATEs (notices: `routed_at`; messages: `status`; escalations:
`level`), so two notifier replicas never send the same message or escalate twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from courier.common.db.engine import Database
from courier.common.db.models_incidents import Escalation, Incident, Notice, Notification
from courier.common.logging import get_logger
from courier.common.metrics import NOTIFICATIONS
from courier.common.settings import Settings
from courier.notifier.mail import SmtpMail
from courier.notifier.rota import Rota
from courier.notifier.routing import PAGED, digest_text, page_text, plan
from courier.notifier.sms import SmsSender

log = get_logger(__name__)

BATCH = 5000
RATE_LIMITED = ("opened", "resolved")
# A message claimed by a notifier that then died is sent again after this long.
SENDING_LEASE = timedelta(minutes=2)
CONCURRENCY = 16


@dataclass
class Channels:
    sms: SmsSender
    mail: SmtpMail | None
    retry_wait: float = 0.5


async def _claim_notices(
    session: AsyncSession, now: datetime, notice_ids: Sequence[int]
) -> list[Any]:
    """Claim those of `notice_ids` not routed yet; rows of (id, incident_id, reason,
    payload). A notice routed before (a redelivered event) is not claimed again."""
    pending = (
        select(Notice.id)
        .where(Notice.id.in_(notice_ids), Notice.routed_at.is_(None))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            update(Notice)
            .where(Notice.id.in_(pending), Notice.routed_at.is_(None))
            .values(routed_at=now)
            .returning(Notice.id, Notice.incident_id, Notice.reason, Notice.payload)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return sorted(rows, key=lambda n: n.id)


async def _recent_counts(
    session: AsyncSession, incident_ids: set[Any], since: datetime
) -> dict[tuple[Any, str], int]:
    if not incident_ids:
        return {}
    rows = await session.execute(
        select(Notification.incident_id, Notification.recipient, func.count())
        .where(
            Notification.incident_id.in_(incident_ids),
            Notification.created_at >= since,
            Notification.level == 0,
            Notification.status.in_(("pending", "sending", "sent", "failed")),
        )
        .group_by(Notification.incident_id, Notification.recipient)
    )
    return {(i, r): n for i, r, n in rows.all()}


async def route_notices(
    db: Database, now: datetime, rota: Rota | None, settings: Settings, notice_ids: Sequence[int]
) -> int:
    """Turn these notices into delivery-log rows; returns how many messages it planned."""
    planned = 0
    async with db.transaction() as session:
        notices = await _claim_notices(session, now, notice_ids)
        if not notices:
            return 0
        chain = rota.chain(now) if rota else []
        if rota is None:
            log.error("no on-call rota applied: pages have nobody to go to")
        after = rota.escalate_after(settings.escalation_minutes) if rota else None
        incident_ids = {n.incident_id for n in notices if n.incident_id}
        recent = await _recent_counts(session, incident_ids, now - timedelta(hours=1))
        escalating = set(
            await session.scalars(
                select(Escalation.incident_id).where(Escalation.incident_id.in_(incident_ids))
            )
        )
        # More pages than the digest threshold in one pass go out as one digest per person.
        brief = sum(n.reason in PAGED for n in notices) > settings.sms_digest_threshold
        rows: list[dict[str, Any]] = []
        escalations: list[dict[str, Any]] = []
        for n in notices:
            for m in plan(n.reason, n.payload, chain, settings.console_base_url, brief):
                status = "pending"
                if n.reason in RATE_LIMITED and n.incident_id is not None:
                    key = (n.incident_id, m.recipient)
                    recent[key] = recent.get(key, 0) + 1
                    if recent[key] > settings.notify_max_per_hour:
                        status = "suppressed"
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "notice_id": n.id,
                        "incident_id": n.incident_id,
                        "channel": m.channel,
                        "recipient": m.recipient,
                        "recipient_name": m.recipient_name,
                        "level": m.level,
                        "status": status,
                        "subject": m.subject,
                        "body": m.body,
                        "attempts": 0,
                        "created_at": now,
                        "next_attempt_at": now,
                    }
                )
            if (
                n.reason == "opened"
                and n.incident_id
                and chain
                and after is not None
                and n.incident_id not in escalating
            ):
                escalating.add(n.incident_id)
                escalations.append(
                    {
                        "incident_id": n.incident_id,
                        "notice_id": n.id,
                        "level": 0,
                        "paged_at": now,
                        "next_at": now + after if rota.pages_in_total(chain) > 1 else None,
                    }
                )
        if rows:
            await session.execute(insert(Notification.__table__), rows)
        if escalations:
            await session.execute(insert(Escalation.__table__), escalations)
        planned = len(rows)
    log.info("notices routed", notices=len(notices), messages=planned)
    return planned


async def _claim_messages(session: AsyncSession, now: datetime) -> list[tuple[Any, Any]]:
    """Claim due messages; (row, notice payload) pairs, the row as plain columns."""
    due = (
        select(Notification.id)
        .where(
            or_(
                Notification.status == "pending",
                Notification.status.in_(("failed", "sending"))
                & (Notification.next_attempt_at <= now),
            )
        )
        .order_by(Notification.created_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = (
        update(Notification)
        .where(
            Notification.id.in_(due),
            Notification.status.in_(("pending", "failed", "sending")),
        )
        .values(
            status="sending",
            attempts=Notification.attempts + 1,
            next_attempt_at=now + SENDING_LEASE,
        )
        .returning(
            Notification.id,
            Notification.notice_id,
            Notification.channel,
            Notification.recipient,
            Notification.subject,
            Notification.body,
            Notification.attempts,
            Notification.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    rows = sorted((await session.execute(claimed)).all(), key=lambda n: n.created_at)
    notice_ids = {n.notice_id for n in rows if n.notice_id is not None}
    payloads: dict[Any, Any] = {}
    if notice_ids:
        found = await session.execute(
            select(Notice.id, Notice.payload).where(Notice.id.in_(notice_ids))
        )
        payloads = {i: p for i, p in found.all()}
    return [(n, payloads.get(n.notice_id)) for n in rows]


@dataclass
class Outgoing:
    ids: list[Any]
    channel: str
    recipient: str
    body: str
    subject: str | None = None
    provider_id: str | None = None
    error: str | None = None


def _batch_messages(claimed: list[tuple[Any, Any]], settings: Settings) -> list[Outgoing]:
    out: list[Outgoing] = []
    sms_by_phone: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for n, payload in claimed:
        if n.channel == "sms":
            sms_by_phone[n.recipient].append((n, payload))
        else:
            out.append(Outgoing([n.id], n.channel, n.recipient, n.body, n.subject))
    for phone, group in sms_by_phone.items():
        if len(group) > settings.sms_digest_threshold:
            payloads = [p or {"summary": n.body} for n, p in group]
            text = digest_text(payloads, settings.console_base_url)
            out.append(Outgoing([n.id for n, _ in group], "sms", phone, text))
        else:
            out += [Outgoing([n.id], "sms", phone, n.body) for n, _ in group]
    return out


async def _deliver(message: Outgoing, channels: Channels, gate: asyncio.Semaphore) -> None:
    async with gate:
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(3),
                wait=wait_exponential(multiplier=channels.retry_wait, max=10),
                reraise=True,
            ):
                with attempt:
                    if message.channel == "sms":
                        message.provider_id = await channels.sms.send(
                            message.recipient, message.body
                        )
                    elif channels.mail is None:
                        raise RuntimeError("no SMTP server configured (COURIER_SMTP_URL)")
                    else:
                        message.provider_id = await channels.mail.send(
                            message.recipient, message.subject or "", message.body
                        )
        except Exception as exc:
            message.error = f"{type(exc).__name__}: {exc}"


async def send_due(
    db: Database, now: datetime, channels: Channels, settings: Settings, clock: Any
) -> int:
    """Send what is due; returns how many delivery-log rows went out."""
    async with db.transaction() as session:
        claimed = await _claim_messages(session, now)
    if not claimed:
        return 0
    # The claim counted this attempt already (RETURNING gives the updated row).
    attempts = {n.id: n.attempts for n, _ in claimed}
    outgoing = _batch_messages(claimed, settings)
    gate = asyncio.Semaphore(CONCURRENCY)
    await asyncio.gather(*(_deliver(m, channels, gate) for m in outgoing))
    sent_at = clock.now()
    sent = 0
    outcomes: list[tuple[str, str]] = []
    async with db.transaction() as session:
        for m in outgoing:
            provider = channels.sms.name if m.channel == "sms" else "smtp"
            if m.error is None:
                values: dict[str, Any] = {
                    "status": "sent",
                    "sent_at": sent_at,
                    "provider": provider,
                    "provider_id": m.provider_id,
                    "error": None,
                    "next_attempt_at": None,
                }
                await session.execute(
                    update(Notification)
                    .where(Notification.id.in_(m.ids))
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
                sent += len(m.ids)
                outcomes += [(m.channel, "sent")] * len(m.ids)
                continue
            log.warning("message not delivered", channel=m.channel, recipients=1, error=m.error)
            for nid in m.ids:
                tries = attempts[nid]
                gave_up = tries >= settings.notify_max_attempts
                outcomes.append((m.channel, "gave_up" if gave_up else "failed"))
                await session.execute(
                    update(Notification)
                    .where(Notification.id == nid)
                    .values(
                        status="gave_up" if gave_up else "failed",
                        provider=provider,
                        error=m.error,
                        next_attempt_at=None
                        if gave_up
                        else now + timedelta(seconds=30 * 2 ** min(tries, 6)),
                    )
                    .execution_options(synchronize_session=False)
                )
    for channel, outcome in outcomes:  # counted once committed
        NOTIFICATIONS.labels(channel, outcome).inc()
    log.info("messages sent", sent=sent, batches=len(outgoing))
    return sent


async def escalate_due(db: Database, now: datetime, rota: Rota | None, settings: Settings) -> int:
    """Page the next person for every incident still unacknowledged past its deadline."""
    if rota is None:
        return 0
    chain = rota.chain(now)
    total = rota.pages_in_total(chain)
    after = rota.escalate_after(settings.escalation_minutes)
    escalated = 0
    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(Escalation, Incident)
                .join(Incident, Incident.id == Escalation.incident_id)
                .where(Escalation.next_at.is_not(None), Escalation.next_at <= now)
                .limit(BATCH)
                .with_for_update(of=Escalation, skip_locked=True)
            )
        ).all()
        for esc, incident in rows:
            level = esc.level + 1
            stop = incident.state != "open" or level >= total
            claimed = await session.execute(
                update(Escalation)
                .where(Escalation.incident_id == esc.incident_id, Escalation.level == esc.level)
                .values(
                    level=esc.level if stop else level,
                    paged_at=esc.paged_at if stop else now,
                    next_at=None if stop or level + 1 >= total else now + after,
                )
                .execution_options(synchronize_session=False)
            )
            if stop or claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            # Past the last person, the chain starts again at the top.
            person = chain[level % len(chain)]
            session.add(
                Notification(
                    notice_id=esc.notice_id,
                    incident_id=incident.id,
                    channel="sms",
                    recipient=person.phone,
                    recipient_name=person.name,
                    level=level,
                    status="pending",
                    body=page_text(
                        "escalation",
                        incident.payload(),
                        settings.console_base_url,
                        previous=chain[esc.level % len(chain)].name,
                        after_minutes=round(after.total_seconds() / 60),
                    ),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
            escalated += 1
            log.warning("page escalated", incident_id=str(incident.id), level=level, to=person.name)
            if level + 1 >= total:
                log.error(
                    "last page of an unacknowledged incident: paging stops",
                    incident_id=str(incident.id),
                    rounds=rota.escalation_rounds,
                )
    return escalated
