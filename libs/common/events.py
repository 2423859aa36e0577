"""Versioned payloads of every subject on the bus.

A consumer accepts any `version` it knows; adding an optional field keeps the
version, changing or removing one bumps it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

FILE_RECEIVED = "courier.file.received"
FILE_REJECTED = "courier.file.rejected"
FILE_DOWNLOADED = "courier.file.downloaded"
IMPORT_COMPLETED = "courier.import.completed"
IMPORT_FAILED = "courier.import.failed"
IMPORT_DECIDE = "courier.import.decide"
EXPORT_DELIVERED = "courier.export.delivered"
EXPORT_RUN = "courier.export.run"
EXPORT_REDELIVER = "courier.export.redeliver"
INCIDENT_ACT = "courier.incident.act"
ALERT_RAISED = "courier.alert.raised"
NOTICE_RAISED = "courier.notice.raised"
# Notice ids one `NoticesRaised` carries at most: a busy minute commits thousands of
# notices at once, and a message stays a few kilobytes.
NOTICES_PER_EVENT = 1000


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every payload; `msg_id` derives the JetStream dedupe id from content."""

    model_config = ConfigDict(extra="ignore")

    subject: ClassVar[str]
    version: int = 1
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)

    def dedupe_key(self) -> str:
        return str(self.event_id)

    def msg_id(self) -> str:
        digest = hashlib.sha256(f"{self.subject}|{self.dedupe_key()}".encode()).hexdigest()
        return digest[:40]


class FileReceived(Event):
    subject: ClassVar[str] = FILE_RECEIVED

    file_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    area: Literal["inbound"] = "inbound"
    name: str
    storage_key: str
    size: int
    sha256: str
    # unpack: a member of a zip the importer unpacked (the zip's file is in its import).
    source: Literal["gateway", "poll", "reconcile", "api", "unpack"] = "gateway"
    account: str | None = None

    def dedupe_key(self) -> str:
        return f"{self.tenant_id}|{self.file_id}|{self.sha256}"


class FileRejected(Event):
    subject: ClassVar[str] = FILE_REJECTED

    file_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    name: str
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)
    import_id: uuid.UUID | None = None
    # The feed that took the file (None: no feed did, e.g. an unrecognised name), and
    # when the file arrived: what an expected-file window is judged by.
    feed_id: uuid.UUID | None = None
    feed: str | None = None
    received_at: datetime | None = None
    # A test file (/inbound/test/ or a feed marked `test: true`): checked, never applied.
    test: bool = False

    def dedupe_key(self) -> str:
        return f"{self.file_id}|{self.reason}"


class ImportCounts(BaseModel):
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    errored: int = 0


class ImportCompleted(Event):
    subject: ClassVar[str] = IMPORT_COMPLETED

    import_id: uuid.UUID
    file_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    feed: str
    name: str
    status: str
    counts: ImportCounts
    feed_id: uuid.UUID | None = None
    # When the file arrived (not when its import finished).
    received_at: datetime | None = None
    test: bool = False

    def dedupe_key(self) -> str:
        return f"{self.import_id}|{self.status}"


class ImportFailed(Event):
    subject: ClassVar[str] = IMPORT_FAILED

    import_id: uuid.UUID | None
    file_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    feed: str | None = None
    name: str
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)
    feed_id: uuid.UUID | None = None
    received_at: datetime | None = None
    test: bool = False

    def dedupe_key(self) -> str:
        return f"{self.file_id}|{self.import_id}"


class ExportDelivered(Event):
    subject: ClassVar[str] = EXPORT_DELIVERED

    export_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant: str
    spec: str
    destination: str
    name: str
    sha256: str
    rows: int
    # A pickup-area delivery: where the partner collects it, and by when the monitor
    # expects a download (None: nobody watches for one).
    path: str | None = None
    collect_by: datetime | None = None

    def dedupe_key(self) -> str:
        return f"{self.export_id}|{self.destination}"


class FileDownloaded(Event):
    """A partner read a whole file from their area (a partial read is not a download)."""

    subject: ClassVar[str] = FILE_DOWNLOADED

    tenant_id: uuid.UUID
    tenant: str
    path: str
    size: int
    username: str


class AlertRaised(Event):
    """Anything a person may need to hear about; the monitor turns these into incidents."""

    subject: ClassVar[str] = ALERT_RAISED

    kind: str
    # Alerts with the same cause share a key so they fold into one incident.
    cause_key: str
    tenant_id: uuid.UUID | None = None
    tenant: str | None = None
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)

    def dedupe_key(self) -> str:
        return f"{self.kind}|{self.cause_key}|{self.occurred_at.isoformat()}"


class ImportDecide(Event):
    """A command: a person approves or rejects a held import; the importer carries it out.

    Sent by the console and the CLI through the outbox; the importer owns imports, so
    it alone applies the decision. Each request is its own command (its `event_id`);
    a second decision on an import already decided is refused, not applied twice.
    """

    subject: ClassVar[str] = IMPORT_DECIDE

    import_id: uuid.UUID
    tenant_id: uuid.UUID
    decision: Literal["approve", "reject"]
    by: str


# What a note on an incident records; some kinds move the partner SLA clocks.
NoteKind = Literal["note", "contacted", "partner_response", "reply"]


class IncidentAct(Event):
    """A command: a person acknowledges, resolves or adds a note to an incident; the
    monitor carries it out.

    Sent by the console and the CLI through the outbox; the monitor owns incidents and
    their SLA timers, so it alone changes them. The action takes effect as of
    `occurred_at` (when the person acted), and that moment with `by` marks the change
    it made: a redelivered command finds it made and changes nothing.
    """

    subject: ClassVar[str] = INCIDENT_ACT

    incident_id: uuid.UUID
    action: Literal["ack", "resolve", "note"]
    by: str = Field(min_length=1, max_length=100)
    # The note's text (a resolve's closing note; empty: "resolved").
    text: str = ""
    note_kind: NoteKind = "note"


class ExportRun(Event):
    """A command: a person asks for the period of an export spec that holds `day` to be
    exported now; the exporter carries it out.

    Sent by the CLI through the outbox; the exporter owns exports, so it alone creates,
    builds and delivers them. A period has one export (unique on spec and period), so a
    redelivered command makes no second file.
    """

    subject: ClassVar[str] = EXPORT_RUN

    spec_id: uuid.UUID
    tenant_id: uuid.UUID
    day: date
    by: str
    # A sample for a partner's testing: built into /outbound/test/, never the period's
    # export, never pushed to the partner's own server.
    test: bool = False


class ExportRedeliver(Event):
    """A command: a person asks for a built export to be delivered again to all its
    destinations, with a fresh window; the exporter carries it out.

    Sent by the CLI through the outbox. A delivery round started at or after
    `occurred_at` answers it, so a redelivered command starts no second round.
    """

    subject: ClassVar[str] = EXPORT_REDELIVER

    export_id: uuid.UUID
    tenant_id: uuid.UUID
    by: str


class NoticesRaised(Event):
    """The monitor committed these notices (incident opened, SLA timer, window warning,
    resolved); the notifier routes them to people. One event per committed batch."""

    subject: ClassVar[str] = NOTICE_RAISED

    notice_ids: list[int] = Field(min_length=1, max_length=NOTICES_PER_EVENT)

    def dedupe_key(self) -> str:
        ids = ",".join(map(str, self.notice_ids))
        return f"{self.notice_ids[0]}|{hashlib.sha256(ids.encode()).hexdigest()}"

    @classmethod
    def batches(cls, notice_ids: list[int]) -> list[NoticesRaised]:
        """The events announcing `notice_ids`, each within the size bound."""
        ids = sorted(set(notice_ids))
        return [
            cls(notice_ids=ids[i : i + NOTICES_PER_EVENT])
            for i in range(0, len(ids), NOTICES_PER_EVENT)
        ]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.subject: cls
    for cls in (
        FileReceived,
        FileRejected,
        ImportCompleted,
        ImportFailed,
        ImportDecide,
        IncidentAct,
        ExportRun,
        ExportRedeliver,
        ExportDelivered,
        FileDownloaded,
        AlertRaised,
        NoticesRaised,
    )
}
