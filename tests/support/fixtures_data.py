"""Files partners send, as bytes."""

from __future__ import annotations

LEAVE_HEADER = "employee_id,leave_type,balance_hours,as_of\n"


def leave_csv(*rows: str, header: str = LEAVE_HEADER) -> bytes:
    return (header + "".join(r + "\n" for r in rows)).encode()
