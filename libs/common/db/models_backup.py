"""The backup ledger: one row per object version copied (or to be copied) to a backup store.

Unique on (key, sha256): the same content at the same key is one backup, however many
events or reconciliation passes point at it, so nothing is copied twice. A new
content at a known key is a new row (a new version in a versioned bucket).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from courier.common.db.base import Base, IdMixin, utcnow

# pending: recorded, not yet verified in the backup store; confirmed: copied and its
# checksum verified; failed: the last try failed (retried with backoff); deleted: removed
# from the backup store on purpose (retention).
BACKUP_STATUSES = ("pending", "confirmed", "failed", "deleted")


class BackupEntry(IdMixin, Base):
    __tablename__ = "backup_ledger"
    __table_args__ = (
        UniqueConstraint("key", "sha256"),
        Index("ix_backup_ledger_status_next", "status", "next_attempt_at"),
        Index("ix_backup_ledger_tenant_key", "tenant_id", "key"),
    )

    # No foreign key: the ledger of what was backed up outlives the tenant row.
    tenant_id: Mapped[uuid.UUID]
    region: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # What put it here: received | result | export | pickup | reconcile.
    origin: Mapped[str] = mapped_column(String(16))
    backup_version_id: Mapped[str | None] = mapped_column(String(1024), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # A failed row is not tried again before this (exponential backoff on attempts).
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Retention: when and why this version was removed from the backup store (status
    # `deleted`), and when and why the object left the primary store (the backup stays
    # confirmed and restorable until its own retention runs out).
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_reason: Mapped[str | None] = mapped_column(Text, default=None)
    primary_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    primary_deleted_reason: Mapped[str | None] = mapped_column(Text, default=None)


class BackupPass(Base):
    """A periodic backup job (the reconciliation pass), leased so one replica runs it at a time."""

    __tablename__ = "backup_passes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    last_finished_at: Mapped[datetime | None] = mapped_column(default=None)
