"""Staff from HR systems; location and role must name ones the tenant has."""

from courier.common.db.models_domain import Staff
from courier.importer.kinds import Field, Kind

KIND = Kind(
    name="staff",
    table=Staff.__table__,  # type: ignore[arg-type]
    fields=(
        Field("employee_id", max_len=64, required=True),
        Field("first_name", max_len=100, required=True),
        Field("last_name", max_len=100, required=True),
        Field("email", "email", max_len=254),
        Field("start_date", "date", required=True),
        Field("end_date", "date"),
        Field("status", "choice", required=True, choices=("active", "inactive", "terminated")),
        Field("location_code", max_len=64, references="locations"),
        Field("role_code", max_len=64, references="roles"),
    ),
    key=("employee_id",),
)
