"""Tables shared across services: tenants, accounts, feeds, received files, imports, domain."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from courier.common.db.base import Base, CreatedMixin, IdMixin, utcnow


class Tenant(IdMixin, CreatedMixin, Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Where every file of the tenant lives (its region's primary and backup stores).
    region: Mapped[str] = mapped_column(String(32), default="local", server_default="local")
    # Retention in days of the tenant's files in the primary and in the backup store
    # (None: kept forever), applied by the backup service's retention job.
    retention_days_primary: Mapped[int | None] = mapped_column(default=None)
    retention_days_backup: Mapped[int | None] = mapped_column(default=None)
    # Business calendar: public holidays of a country (ISO 3166 code, `holidays` library)
    # and subdivision, plus the tenant's own closure dates (ISO dates), skipped by every
    # window and schedule set to business days. See `courier.common.calendar`.
    holiday_country: Mapped[str | None] = mapped_column(String(8), default=None)
    holiday_subdivision: Mapped[str | None] = mapped_column(String(16), default=None)
    closure_dates: Mapped[list[str]] = mapped_column(JSON, default=list)


class SftpAccount(IdMixin, CreatedMixin, Base):
    __tablename__ = "sftp_accounts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    # "password+key" (both, in one connection), "key" or "password".
    auth_policy: Mapped[str] = mapped_column(String(16), default="password+key")
    # Upload to /inbound; read files; delete in /outbound. Read-only = can_read alone.
    can_upload: Mapped[bool] = mapped_column(default=True)
    can_read: Mapped[bool] = mapped_column(default=True)
    can_delete: Mapped[bool] = mapped_column(default=True)
    # Bytes the tenant's /inbound may hold while this account uploads; None = no limit.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # CIDRs (IPv4 or IPv6) the account may connect from; empty = from nowhere.
    allowed_cidrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    password_set_at: Mapped[datetime | None] = mapped_column(default=None)
    password_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # The expiry a `password_expiring` alert was staged for (one reminder per expiry).
    password_reminded_for: Mapped[datetime | None] = mapped_column(default=None)
    # Offer this account's allowlisted addresses the legacy key exchanges and MACs its
    # partner's old client needs (set per account, audited; never for everyone).
    legacy_algorithms: Mapped[bool] = mapped_column(default=False, server_default=false())

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Feed(IdMixin, CreatedMixin, Base):
    """An import feed: which file names it takes and how they are read (spec as JSON)."""

    __tablename__ = "feeds"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    pattern: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # When the feed's first live (non-test) file arrived: starts `hold_for_approval:
    # {live_days: N}`.
    live_started_at: Mapped[datetime | None] = mapped_column(default=None)


class ReceivedFile(IdMixin, Base):
    """Ledger of every file that reached storage (its event is staged with the row)."""

    __tablename__ = "received_files"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    area: Mapped[str] = mapped_column(String(16), default="inbound")
    name: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(1024), unique=True)
    inbound_key: Mapped[str | None] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    account: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Import(IdMixin, Base):
    """One processed file. `file_id` is unique so a redelivered event cannot import twice."""

    __tablename__ = "imports"
    __table_args__ = (
        Index(
            "ix_imports_scheduled",
            "apply_at",
            postgresql_where=text("apply_at IS NOT NULL"),
            sqlite_where=text("apply_at IS NOT NULL"),
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    feed_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("received_files.id"), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    # completed | completed_with_errors | rejected | failed | duplicate | awaiting_approval
    # | discarded (a held change set someone rejected)
    status: Mapped[str] = mapped_column(String(24))
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    errored: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # The partner's result file in /outbound/results, written before this row commits.
    result_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    # Approval of a held import: requested `approve` | `reject`, by whom, when acted on.
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    # A test import (/inbound/test/ or a feed marked `test: true`): checked in full,
    # audited as a preview, never applied.
    test: Mapped[bool] = mapped_column(default=False, server_default=false())
    # A checked file waiting for its feed's `apply_window`: applied at or after this time.
    apply_at: Mapped[datetime | None] = mapped_column(default=None)

    tenant: Mapped[Tenant] = relationship(lazy="joined")
    feed: Mapped[Feed | None] = relationship(lazy="joined")


class ImportRecord(Base):
    """One audited CSV row (or, with row number 0, one record a full sync deleted).

    The key is where the row sits in its import: the console and the result file
    read an import's records in row order from it, and a bulk import maintains one
    index instead of a surrogate key plus that index. `seq` tells apart the
    several deleted records of an import (all row 0); it is 0 otherwise.
    """

    __tablename__ = "import_records"

    # On PostgreSQL this reference (and the leave balance's tenant_id and feed_id) is
    # kept by statement-level triggers, not a per-row foreign key (migration 0009).
    import_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, default=0)
    record_key: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class LeaveBalance(IdMixin, Base):
    __tablename__ = "leave_balances"
    __table_args__ = (UniqueConstraint("tenant_id", "employee_id", "leave_type"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    employee_id: Mapped[str] = mapped_column(String(64))
    leave_type: Mapped[str] = mapped_column(String(64))
    balance_hours: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    as_of: Mapped[date]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The feed that last wrote the row: a full sync deletes within its own feed only.
    feed_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("feeds.id", ondelete="SET NULL"), default=None
    )
