"""Gateway tables: account keys, password policy and history, session audit, bans."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from courier.common.db.base import Base, CreatedMixin, IdMixin, utcnow

_BIGINT_ID = BigInteger().with_variant(Integer(), "sqlite")


class AccountKey(IdMixin, CreatedMixin, Base):
    """An authorized public key of an SFTP account (OpenSSH one-line form)."""

    __tablename__ = "sftp_account_keys"
    __table_args__ = (UniqueConstraint("account_id", "fingerprint"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sftp_accounts.id", ondelete="CASCADE"), index=True
    )
    algorithm: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(String(255))
    # After this moment the key is refused; None: it does not expire.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # The last reminder staged for this key's expiry, in days before it (30, 7, 1).
    reminded_days: Mapped[int | None] = mapped_column(default=None)


class PasswordPolicy(IdMixin, Base):
    """A tenant's agreed password strength and rotation; tenants without a row get defaults."""

    __tablename__ = "password_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), unique=True
    )
    min_length: Mapped[int] = mapped_column(default=14)
    # How many of lower case, upper case, digits and symbols must appear.
    min_classes: Mapped[int] = mapped_column(default=3)
    # A new password may not be any of the last `history` ones.
    history: Mapped[int] = mapped_column(default=5)
    # Maximum age; 0 = passwords do not expire.
    max_age_days: Mapped[int] = mapped_column(default=90)
    # `password_expiring` alerts start this many days before expiry.
    warn_days: Mapped[int] = mapped_column(default=14)
    # Default lifetime of a newly added SSH key; 0 = keys do not expire unless told.
    key_max_age_days: Mapped[int] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PasswordHistory(Base):
    """Hashes of an account's earlier passwords, to refuse reuse."""

    __tablename__ = "sftp_password_history"

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sftp_accounts.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionEvent(Base):
    """One line of the session audit: login, upload, download, delete, rename, disconnect.

    Kept without foreign keys so an audit line survives its account or tenant.
    """

    __tablename__ = "gateway_session_events"
    __table_args__ = (
        Index("ix_gateway_session_events_peer_kind_at", "peer", "kind", "at"),
        Index("ix_gateway_session_events_session", "session"),
        Index("ix_gateway_session_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    session: Mapped[str] = mapped_column(String(32))
    peer: Mapped[str] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(64))
    tenant: Mapped[str | None] = mapped_column(String(63))
    # login_succeeded | login_failed | password_changed | password_change_refused | upload
    # | upload_refused | download | delete | rename | disconnect | banned
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(String(1024))
    bytes: Mapped[int | None] = mapped_column(BigInteger)


class Ban(IdMixin, Base):
    """An address refused at connect time until `until` (or until lifted).

    One row per ban, kept after it ends: an address banned again gets a new row, so
    `courier gateway bans --all` shows its whole history.
    """

    __tablename__ = "gateway_bans"
    __table_args__ = (Index("ix_gateway_bans_address_until", "address", "until"),)

    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(String(255))
    banned_at: Mapped[datetime] = mapped_column(default=utcnow)
    until: Mapped[datetime]
    # Ended early by an operator (`courier gateway bans --lift`), and who.
    lifted_at: Mapped[datetime | None] = mapped_column(default=None)
    lifted_by: Mapped[str | None] = mapped_column(String(100), default=None)
