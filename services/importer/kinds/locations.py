"""Locations (sites, regions); a parent is another location, possibly earlier in the file."""

from courier.common.db.models_domain import Location
from courier.importer.kinds import Field, Kind

KIND = Kind(
    name="locations",
    table=Location.__table__,  # type: ignore[arg-type]
    fields=(
        Field("code", max_len=64, required=True),
        Field("name", max_len=200, required=True),
        Field("timezone", max_len=64),
        Field("parent_code", max_len=64, references="locations"),
    ),
    key=("code",),
)
