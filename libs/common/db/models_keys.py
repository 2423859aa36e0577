"""OpenPGP keys per tenant: Courier's own key pair (decrypts what partners send, signs
what they collect) and partners' public keys (encrypt exports to them, verify their
signatures), scoped to the tenant, an SFTP account or a feed.

A secret key is stored only as gpg exported it under a passphrase that lives in the
settings or a Secret (`COURIER_PGP_PASSPHRASE`), never in the database.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from courier.common.db.base import Base, CreatedMixin, IdMixin

# courier: our key pair for the tenant; partner: a partner's public key.
KEY_OWNERS = ("courier", "partner")


class PgpKey(IdMixin, CreatedMixin, Base):
    __tablename__ = "pgp_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "fingerprint"),
        Index("ix_pgp_keys_tenant_owner", "tenant_id", "owner"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    owner: Mapped[str] = mapped_column(String(16))
    # A partner key may be limited to one SFTP account or one feed; neither: the tenant's.
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sftp_accounts.id", ondelete="CASCADE"), default=None
    )
    feed_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("feeds.id", ondelete="CASCADE"), default=None
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(32))
    bits: Mapped[int | None] = mapped_column(default=None)
    user_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    key_created_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # ASCII-armored public key (and subkeys).
    public_key: Mapped[str] = mapped_column(Text)
    # ASCII-armored secret key, protected by gpg with the configured passphrase; only
    # for owner == courier.
    secret_key: Mapped[str | None] = mapped_column(Text, default=None)
    # The last expiry reminder staged, in days before expiry (30, 7, 1).
    reminded_days: Mapped[int | None] = mapped_column(default=None)
