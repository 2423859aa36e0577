"""Tables of the monitor and the notifier: expected-file windows, incidents, SLA timers,
the notices between them, the delivery log, escalation state, the on-call rota and
service heartbeats.

Every "fire once" step (a window closing, a timer warning or breaching, an escalation
level) is a conditional UPDATE on a column that is NULL until it fires, so two replicas
or a restarted one cannot fire it again; an open incident's cause is unique (`open_key`)
so repeats fold into it instead of opening another.

The incident's state changes live here, on the model, so the monitor's own rules (a late
file, a heartbeat back) and people's actions (`courier.incident.act` commands, which the
monitor carries out) agree on what acknowledging or resolving stops.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from courier.common.db.base import Base, CreatedMixin, IdMixin, utcnow
from courier.common.events import NoteKind

BigId = BigInteger().with_variant(Integer(), "sqlite")

# Kinds on our side get the 6-hour resolve clock; the rest need the partner contacted.
# Every kind raised is listed in one of the two (the console filters by them, and each
# has a runbook entry in docs/operations.md).
PLATFORM_KINDS = frozenset(
    {
        "import_failed",
        "import_window_missed",
        "export_build_failed",
        "max_deliveries",
        "service_down",
        "monitor_error",
        "sftp_connection_flood",
        "region_violation",
    }
)
PARTNER_KINDS = frozenset(
    {
        "missing_file",
        "file_rejected",
        "export_undeliverable",
        "export_not_collected",
        "password_expiring",
        "ssh_key_expiring",
        "pgp_key_expiring",
        "source_unreachable",
    }
)
STATES = ("open", "acknowledged", "resolved")
NOTE_KINDS: tuple[str, ...] = get_args(NoteKind)


def incident_class(kind: str) -> str:
    return "partner" if kind in PARTNER_KINDS else "platform"


@dataclass(frozen=True)
class SlaPolicy:
    platform_resolve: timedelta = timedelta(hours=6)
    partner_contact: timedelta = timedelta(hours=6)
    partner_response: timedelta = timedelta(hours=24)
    warn_before: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: Any) -> SlaPolicy:
        return cls(
            platform_resolve=timedelta(hours=settings.sla_platform_resolve_hours),
            partner_contact=timedelta(hours=settings.sla_partner_contact_hours),
            partner_response=timedelta(hours=settings.sla_partner_response_hours),
            warn_before=timedelta(minutes=settings.sla_warn_minutes),
        )


def sla_timers_for(
    klass: str, now: datetime, policy: SlaPolicy
) -> list[tuple[str, datetime, datetime]]:
    """(kind, due, warn) of the clocks an incident of this class starts with."""
    if klass == "platform":
        kind, due = "resolve", now + policy.platform_resolve
    else:
        kind, due = "contact", now + policy.partner_contact
    return [(kind, due, due - policy.warn_before)]


def incident_payload(values: Any) -> dict[str, Any]:
    """What a notice carries, so templates need no further query (from a row or a dict)."""
    get = values.get if isinstance(values, dict) else lambda k: getattr(values, k)
    first_seen = get("first_seen_at")
    return {
        "incident_id": str(get("id")),
        "kind": get("kind"),
        "class": get("incident_class"),
        "tenant": get("tenant"),
        "feed": get("feed"),
        "file": get("file_name"),
        "summary": get("summary"),
        "details": get("details"),
        "contacts": get("contacts"),
        "occurrences": get("occurrences"),
        "state": get("state"),
        "first_seen_at": first_seen.isoformat() if first_seen else None,
    }


class ExpectationWindow(IdMixin, Base):
    """One expected arrival of one feed's file: open until a file comes or it closes."""

    __tablename__ = "expectation_windows"
    __table_args__ = (
        UniqueConstraint("feed_id", "due_at"),
        Index("ix_expectation_windows_state_closes", "state", "closes_at"),
        Index("ix_expectation_windows_state_warn", "state", "warn_at"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    feed_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]
    opens_at: Mapped[datetime]
    warn_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    # open | satisfied | missed | cancelled
    state: Mapped[str] = mapped_column(String(16), default="open")
    warned_at: Mapped[datetime | None] = mapped_column(default=None)
    file_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    satisfied_at: Mapped[datetime | None] = mapped_column(default=None)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None
    )
    # Digest of what laid the window out (the feed's expectation, the tenant's zone and
    # calendar): windows not yet open are laid out again when it changes.
    plan_key: Mapped[str | None] = mapped_column(String(32), default=None)


class Incident(IdMixin, CreatedMixin, Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_state_last_seen", "state", "last_seen_at"),
        Index("ix_incidents_cause_key", "cause_key"),
    )

    kind: Mapped[str] = mapped_column(String(48))
    incident_class: Mapped[str] = mapped_column(String(16))
    cause_key: Mapped[str] = mapped_column(String(400))
    # The cause while unresolved, NULL after: unique, so repeats fold into the open one.
    open_key: Mapped[str | None] = mapped_column(String(400), unique=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="SET NULL")
    )
    tenant: Mapped[str | None] = mapped_column(String(63))
    feed: Mapped[str | None] = mapped_column(String(100))
    file_name: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="open")
    occurrences: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when paging waits for a deadline (an export still has time to be delivered).
    page_at: Mapped[datetime | None] = mapped_column(default=None)
    paged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(100), default=None)

    notes: Mapped[list[IncidentNote]] = relationship(
        back_populates="incident", order_by="IncidentNote.at", cascade="all, delete-orphan"
    )
    timers: Mapped[list[SlaTimer]] = relationship(
        back_populates="incident", cascade="all, delete-orphan"
    )

    # ------------------------------------------------------------ behaviour

    def payload(self) -> dict[str, Any]:
        return incident_payload(self)

    def start_timers(self, now: datetime, policy: SlaPolicy) -> None:
        for kind, due, _ in sla_timers_for(self.incident_class, now, policy):
            self._timer(kind, due, policy)

    def _timer(self, kind: str, due: datetime, policy: SlaPolicy) -> SlaTimer:
        timer = SlaTimer(kind=kind, due_at=due, warn_at=due - policy.warn_before)
        self.timers.append(timer)
        return timer

    def _stop_timers(self, now: datetime, *kinds: str) -> None:
        for timer in self.timers:
            if timer.stopped_at is None and (not kinds or timer.kind in kinds):
                timer.stopped_at = now

    def acknowledge(self, now: datetime, by: str) -> bool:
        """Stops escalation (the notifier checks the state); SLA clocks keep running."""
        if self.state != "open":
            return False
        self.state, self.acknowledged_at, self.acknowledged_by = "acknowledged", now, by
        self.notes.append(IncidentNote(at=now, author=by, kind="note", text="acknowledged"))
        return True

    def resolve(self, now: datetime, by: str, note: str | None = None) -> bool:
        if self.state == "resolved":
            return False
        self.state, self.resolved_at, self.resolved_by = "resolved", now, by
        self.open_key = None
        self._stop_timers(now)
        self.notes.append(IncidentNote(at=now, author=by, kind="note", text=note or "resolved"))
        return True

    def add_note(
        self, now: datetime, author: str, text: str, kind: str, policy: SlaPolicy
    ) -> IncidentNote:
        """A note may move SLA clocks: contacting the partner stops the 6-hour contact
        clock, each partner response starts a 24-hour clock that our reply stops."""
        if kind not in NOTE_KINDS:
            raise ValueError(f"note kind must be one of {', '.join(NOTE_KINDS)}")
        note = IncidentNote(at=now, author=author, kind=kind, text=text)
        self.notes.append(note)
        if self.state != "resolved":
            if kind in ("contacted", "reply"):
                self._stop_timers(now, "contact", "respond")
            elif kind == "partner_response":
                self._timer("respond", now + policy.partner_response, policy)
        return note


class IncidentOccurrence(Base):
    """Each event folded into an incident, once: the key makes redelivery harmless."""

    __tablename__ = "incident_occurrences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(400), unique=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    summary: Mapped[str] = mapped_column(Text)


class IncidentNote(Base):
    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    author: Mapped[str] = mapped_column(String(100))
    # note | contacted | partner_response | reply
    kind: Mapped[str] = mapped_column(String(24), default="note")
    text: Mapped[str] = mapped_column(Text)

    incident: Mapped[Incident] = relationship(back_populates="notes")


class SlaTimer(Base):
    __tablename__ = "sla_timers"
    __table_args__ = (
        Index("ix_sla_timers_pending_warn", "stopped_at", "warn_at"),
        Index("ix_sla_timers_pending_due", "stopped_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    # resolve (platform) | contact | respond (partner)
    kind: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    warn_at: Mapped[datetime]
    warned_at: Mapped[datetime | None] = mapped_column(default=None)
    breached_at: Mapped[datetime | None] = mapped_column(default=None)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)

    incident: Mapped[Incident] = relationship(back_populates="timers")


class Notice(Base):
    """What the monitor asks the notifier to tell people, written in the same
    transaction as the change it announces, with the `courier.notice.raised` event that
    hands it over, so a crash between the two cannot lose a page."""

    __tablename__ = "incident_notices"
    __table_args__ = (Index("ix_incident_notices_routed", "routed_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE")
    )
    # opened | sla_warning | sla_breach | resolved | window_warning
    reason: Mapped[str] = mapped_column(String(24))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    routed_at: Mapped[datetime | None] = mapped_column(default=None)


class Notification(IdMixin, Base):
    """Delivery log: one message to one recipient on one channel, with its fate."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("notice_id", "channel", "recipient", "level"),
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
        Index("ix_notifications_incident", "incident_id", "created_at"),
    )

    notice_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("incident_notices.id", ondelete="SET NULL")
    )
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(8))  # sms | email
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_name: Mapped[str] = mapped_column(String(200))
    # 0 = first page; n = n-th escalation
    level: Mapped[int] = mapped_column(default=0)
    # pending | sent | failed | suppressed | gave_up
    status: Mapped[str] = mapped_column(String(12), default="pending")
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class Escalation(Base):
    """Who was paged last for an incident and when the next person is due."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_next", "next_at"),)

    incident_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    notice_id: Mapped[int | None] = mapped_column(BigId)
    level: Mapped[int] = mapped_column(default=0)
    paged_at: Mapped[datetime]
    # NULL once acknowledged, resolved or out of people to page.
    next_at: Mapped[datetime | None]


class OncallRota(Base):
    __tablename__ = "oncall_rotas"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ServiceHeartbeat(Base):
    __tablename__ = "service_heartbeats"
    __table_args__ = (Index("ix_service_heartbeats_service", "service", "last_seen_at"),)

    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    service: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class PickupWatch(Base):
    """An export placed in a pickup area, waiting for the partner to download it.

    The delivery is not the end: the monitor closes the loop when the partner has
    collected the file, and raises `export_not_collected` when they have not by
    `collect_by`. Claimed by a conditional UPDATE of `alerted_at`, so with two
    monitor replicas one alerts.
    """

    __tablename__ = "pickup_watches"
    __table_args__ = (
        Index("ix_pickup_watches_due", "collected_at", "alerted_at", "collect_by"),
        Index("ix_pickup_watches_path", "tenant_id", "path"),
    )

    export_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(63))
    spec: Mapped[str] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(String(255))
    placed_at: Mapped[datetime]
    collect_by: Mapped[datetime]
    collected_at: Mapped[datetime | None] = mapped_column(default=None)
    collected_by: Mapped[str | None] = mapped_column(String(64), default=None)
    alerted_at: Mapped[datetime | None] = mapped_column(default=None)
