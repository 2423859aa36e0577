"""Leave balances from payroll, keyed by employee and leave type."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import LeaveBalance

COLUMNS = ("employee_id", "leave_type", "balance_hours", "as_of")


class RowError(ValueError):
    pass


@dataclass(frozen=True)
class LeaveRow:
    employee_id: str
    leave_type: str
    balance_hours: Decimal
    as_of: date

    @property
    def key(self) -> tuple[str, str]:
        return (self.employee_id, self.leave_type)

    @property
    def key_text(self) -> str:
        return f"{self.employee_id}/{self.leave_type}"


def _required(values: dict[str, str], name: str, max_len: int = 64) -> str:
    value = values[name].strip()
    if not value:
        raise RowError(f"{name}: required")
    if len(value) > max_len:
        raise RowError(f"{name}: longer than {max_len} characters")
    return value


def parse_row(values: dict[str, str]) -> LeaveRow:
    employee_id = _required(values, "employee_id")
    leave_type = _required(values, "leave_type")
    raw_hours = values["balance_hours"].strip()
    try:
        hours = Decimal(raw_hours)
    except InvalidOperation as exc:
        raise RowError(f"balance_hours: {raw_hours!r} is not a number") from exc
    if not hours.is_finite():
        raise RowError(f"balance_hours: {raw_hours!r} is not a number")
    if abs(hours) >= Decimal("1e10"):
        raise RowError(f"balance_hours: {raw_hours!r} is out of range")
    if hours != hours.quantize(Decimal("0.01")):
        raise RowError(f"balance_hours: {raw_hours!r} has more than 2 decimal places")
    raw_date = values["as_of"].strip()
    try:
        as_of = date.fromisoformat(raw_date)
        if len(raw_date) != 10:
            raise ValueError
    except ValueError as exc:
        raise RowError(f"as_of: {raw_date!r} is not a date (expected YYYY-MM-DD)") from exc
    return LeaveRow(employee_id, leave_type, hours.quantize(Decimal("0.01")), as_of)


@dataclass
class Change:
    action: str  # created | updated | unchanged
    changes: dict[str, list[str | None]] | None


async def load_existing(
    session: AsyncSession, tenant_id: uuid.UUID
) -> dict[tuple[str, str], LeaveBalance]:
    rows = await session.scalars(select(LeaveBalance).where(LeaveBalance.tenant_id == tenant_id))
    return {(r.employee_id, r.leave_type): r for r in rows}


def apply_row(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    existing: dict[tuple[str, str], LeaveBalance],
    row: LeaveRow,
) -> Change:
    current = existing.get(row.key)
    if current is None:
        balance = LeaveBalance(
            tenant_id=tenant_id,
            employee_id=row.employee_id,
            leave_type=row.leave_type,
            balance_hours=row.balance_hours,
            as_of=row.as_of,
        )
        session.add(balance)
        existing[row.key] = balance
        return Change(
            "created",
            {"balance_hours": [None, str(row.balance_hours)], "as_of": [None, str(row.as_of)]},
        )
    changes: dict[str, list[str | None]] = {}
    if Decimal(current.balance_hours) != row.balance_hours:
        changes["balance_hours"] = [str(Decimal(current.balance_hours)), str(row.balance_hours)]
        current.balance_hours = row.balance_hours
    if current.as_of != row.as_of:
        changes["as_of"] = [str(current.as_of), str(row.as_of)]
        current.as_of = row.as_of
    return Change("updated", changes) if changes else Change("unchanged", None)
