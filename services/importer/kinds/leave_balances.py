"""Leave balances from payroll, keyed by employee and leave type."""

from courier.common.db.models import LeaveBalance
from courier.importer.kinds import Field, Kind

KIND = Kind(
    name="leave_balances",
    table=LeaveBalance.__table__,  # type: ignore[arg-type]
    fields=(
        Field("employee_id", max_len=64, required=True),
        Field("leave_type", max_len=64, required=True),
        Field("balance_hours", "decimal", required=True),
        Field("as_of", "date", required=True),
    ),
    key=("employee_id", "leave_type"),
)
