"""Roles (job titles) from HR systems."""

from courier.common.db.models_domain import Role
from courier.importer.kinds import Field, Kind

KIND = Kind(
    name="roles",
    table=Role.__table__,  # type: ignore[arg-type]
    fields=(
        Field("code", max_len=64, required=True),
        Field("name", max_len=200, required=True),
    ),
    key=("code",),
)
