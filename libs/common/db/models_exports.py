"""Timesheets and actuals (the platform data exports read) and the export ledger.

`exports` has one row per spec and period (unique), so a restarted or second
exporter cannot build a period twice; the lease columns say who is working on it.
"""

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
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from courier.common.db.base import Base, CreatedMixin, IdMixin, utcnow
from courier.common.db.models import Tenant

_BIGINT_PK = BigInteger().with_variant(Integer(), "sqlite")


class Timesheet(Base):
    """One worked shift as approved (or not) in the platform."""

    __tablename__ = "timesheets"
    __table_args__ = (Index("ix_timesheets_tenant_date", "tenant_id", "work_date"),)

    id: Mapped[int] = mapped_column(_BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    employee_id: Mapped[str] = mapped_column(String(64))
    employee_name: Mapped[str] = mapped_column(String(200))
    work_date: Mapped[date]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    break_minutes: Mapped[int] = mapped_column(default=0)
    hours: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    location: Mapped[str] = mapped_column(String(100))
    cost_centre: Mapped[str] = mapped_column(String(64))
    # pending | approved | rejected
    approval: Mapped[str] = mapped_column(String(16), default="pending")


class Actual(Base):
    """Hours and labour cost per location and day (what invoicing and warehouses read)."""

    __tablename__ = "actuals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "location", "work_date"),
        Index("ix_actuals_tenant_date", "tenant_id", "work_date"),
    )

    id: Mapped[int] = mapped_column(_BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    location: Mapped[str] = mapped_column(String(100))
    work_date: Mapped[date]
    hours: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    cost: Mapped[Decimal] = mapped_column(Numeric(12, 2))


class ExportSpec(IdMixin, CreatedMixin, Base):
    """An export as declared in YAML (the validated spec is kept as JSON)."""

    __tablename__ = "export_specs"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class Export(IdMixin, CreatedMixin, Base):
    """One spec's file for one period, from scheduling through delivery."""

    __tablename__ = "exports"
    __table_args__ = (
        # One live export per spec and period; test samples (`test`) are not counted.
        Index(
            "uq_exports_live_period",
            "spec_id",
            "period_start",
            unique=True,
            postgresql_where=text("NOT test"),
            sqlite_where=text("NOT test"),
        ),
        Index("ix_exports_status", "status"),
    )

    spec_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("export_specs.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    period_start: Mapped[date]
    period_end: Mapped[date]
    scheduled_for: Mapped[datetime]
    # A sample built on request for a partner's testing, delivered to /outbound/test/.
    test: Mapped[bool] = mapped_column(default=False, server_default=false())
    # pending | delivering | delivered | failed (build) | undeliverable
    status: Mapped[str] = mapped_column(String(16), default="pending")
    file_name: Mapped[str | None] = mapped_column(String(255))
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    rows: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    built_at: Mapped[datetime | None] = mapped_column(default=None)
    # The current delivery round: attempts since then count (a redelivery starts a new one).
    delivery_started_at: Mapped[datetime | None] = mapped_column(default=None)
    deliver_by: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(default=None)

    spec: Mapped[ExportSpec] = relationship(lazy="joined")
    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        lazy="selectin", order_by="DeliveryAttempt.attempted_at", cascade="all, delete-orphan"
    )


class DeliveryAttempt(IdMixin, Base):
    """Audit of every try to put an export somewhere: when, where, outcome, error."""

    __tablename__ = "export_delivery_attempts"
    __table_args__ = (Index("ix_export_delivery_attempts_export", "export_id", "destination"),)

    export_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(255))
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    # delivered | failed
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
