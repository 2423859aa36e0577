"""Platform data that HR feeds write: locations, roles and staff.

Leave balances live in `models` (they predate this module). Every domain row
remembers the feed that last wrote it, so a full sync deletes only within its
own feed's scope. References between them are by code, checked at import time.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from courier.common.db.base import Base, IdMixin, utcnow


class _Owned:
    # feed_id: on PostgreSQL kept by statement-level triggers, not a per-row foreign key
    # (migration 0009).
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    feed_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("feeds.id", ondelete="SET NULL"), default=None
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Location(IdMixin, _Owned, Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Another location of the same tenant (a site within a region, say).
    parent_code: Mapped[str | None] = mapped_column(String(64))


class Role(IdMixin, _Owned, Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))


class Staff(IdMixin, _Owned, Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("tenant_id", "employee_id"),)

    employee_id: Mapped[str] = mapped_column(String(64))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    start_date: Mapped[date]
    end_date: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(16))
    location_code: Mapped[str | None] = mapped_column(String(64))
    role_code: Mapped[str | None] = mapped_column(String(64))
