"""The `exports` section of a spec file: what an export holds, when it runs, where it goes."""

from __future__ import annotations

import re
import string
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from courier.common.remote import RemoteEndpoint
from courier.common.specs import Contact, Days, StrictModel, check_cron, check_optional_timezone

# The fields each kind offers, and what they hold: only `text` cells can carry a formula.
FieldType = Literal["text", "number", "integer", "date", "datetime"]
FIELDS: dict[str, dict[str, FieldType]] = {
    "timesheets": {
        "employee_id": "text",
        "employee_name": "text",
        "work_date": "date",
        "start": "datetime",
        "end": "datetime",
        "break_minutes": "integer",
        "hours": "number",
        "location": "text",
        "cost_centre": "text",
        "approval": "text",
    },
    "actuals": {
        "location": "text",
        "work_date": "date",
        "hours": "number",
        "cost": "number",
    },
}
TEMPLATE_FIELDS = ("start", "end", "run", "spec", "tenant")


class Schedule(StrictModel):
    """When runs fire: `cron` in `timezone` (None: the tenant's, see `ExportSpecModel.of`).
    On business days, a run that falls on a weekend, public holiday or closure moves to
    the same local time on the next business day, so its period is still exported."""

    cron: str
    timezone: str | None = None
    days: Days = "every_day"

    _cron = field_validator("cron")(check_cron)
    _tz = field_validator("timezone")(check_optional_timezone)

    @property
    def zone(self) -> ZoneInfo:
        if self.timezone is None:
            raise ValueError("the schedule's time zone was not resolved with its tenant")
        return ZoneInfo(self.timezone)


class Period(StrictModel):
    """Which dates a run covers, relative to the run's local date."""

    kind: Literal["previous_day", "previous_week", "pay_period"]
    week_start: Literal[
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ] = "monday"
    # Pay periods: fixed length, counted from any one period's first day.
    length_days: int = Field(default=14, ge=1, le=62)
    anchor: date | None = None

    @model_validator(mode="after")
    def _anchor(self) -> Period:
        if self.kind == "pay_period" and self.anchor is None:
            raise ValueError("a pay_period needs an anchor (the first day of any pay period)")
        return self


class Column(StrictModel):
    field: str
    header: str | None = None
    # strftime pattern for dates and times, a format spec (".2f") for numbers.
    format: str | None = None


class PickupDestination(StrictModel):
    """The tenant's own `/outbound` area, where partners collect files over SFTP."""

    type: Literal["pickup"]
    directory: str = Field(default="", pattern=r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$")
    # The partner must download the file within this time of its placement, or the
    # monitor raises `export_not_collected` (None: the spec's delivery window).
    collect_within: timedelta | None = None
    # False: placing the file is the end of it (a partner who collects irregularly).
    confirm_download: bool = True

    @property
    def label(self) -> str:
        return "pickup:/outbound" + (f"/{self.directory}" if self.directory else "")

    def path(self, name: str) -> str:
        """Where the partner sees the file over SFTP."""
        return "/outbound/" + (f"{self.directory}/{name}" if self.directory else name)


class SftpDestination(RemoteEndpoint):
    """A vendor's SFTP server that Courier pushes to."""

    type: Literal["sftp"]
    directory: str = "."

    @property
    def label(self) -> str:
        return f"{super().label}/{self.directory.lstrip('/')}".replace("/./", "/").rstrip("/.")


Destination = Annotated[PickupDestination | SftpDestination, Field(discriminator="type")]

# Whose public key an encrypted export goes to (see `Encryption.to`).
_RECIPIENT = re.compile(r"^(partner|account:[A-Za-z0-9_.@-]{1,64}|[0-9A-F]{40}|[0-9A-F]{64})$")


class Encryption(StrictModel):
    """OpenPGP encryption of the delivered file (`encrypt: pgp` is the short form).

    `to`: `partner` (the tenant's partner keys registered for no account or feed),
    `account:NAME` (the keys registered for that SFTP account) or one key's full
    fingerprint. Every unexpired key found is a recipient, so during a partner's key
    rotation either key decrypts. `sign`: signed with the tenant's Courier key too.
    `armor`: ASCII-armored (`.asc`) instead of binary (`.pgp`).
    """

    type: Literal["pgp"] = "pgp"
    to: str = "partner"
    sign: bool = False
    armor: bool = False

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value.startswith(("partner", "account:")):
                value = value.replace(" ", "").upper()
            if not _RECIPIENT.match(value):
                raise ValueError(
                    "encrypt.to is `partner`, `account:NAME` or a key's full fingerprint"
                )
        return value

    @property
    def suffix(self) -> str:
        """What the delivered file's name gets."""
        return ".asc" if self.armor else ".pgp"


class ExportSpecModel(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    kind: Literal["timesheets", "actuals"]
    enabled: bool = True
    schedule: Schedule
    period: Period
    columns: list[Column] | None = None
    # Timesheets only: which approval states are exported.
    approval: list[Literal["pending", "approved", "rejected"]] = Field(
        default_factory=lambda: ["approved"]
    )
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    neutralise_formulas: bool = True
    file_name: str
    destinations: list[Destination] = Field(min_length=1)
    delivery_window: timedelta = timedelta(hours=2)
    contacts: list[Contact] = Field(default_factory=list)
    encrypt: Encryption | None = None

    @field_validator("period", mode="before")
    @classmethod
    def _period_shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("encrypt", mode="before")
    @classmethod
    def _encrypt_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("file_name")
    @classmethod
    def _template(cls, value: str) -> str:
        for _, field, _, _ in string.Formatter().parse(value):
            if field is not None and field not in TEMPLATE_FIELDS:
                raise ValueError(
                    f"unknown placeholder {{{field}}}; use {', '.join(TEMPLATE_FIELDS)}"
                )
        probe = render_file_name(value, date(2026, 1, 2), date(2026, 1, 3), _PROBE_RUN, "s", "t")
        if "/" in probe or probe.startswith(".") or not probe:
            raise ValueError("the file name must be a plain name (no '/', no leading '.')")
        return value

    @field_validator("delivery_window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("the delivery window must be positive")
        return value

    @model_validator(mode="after")
    def _columns(self) -> ExportSpecModel:
        known = FIELDS[self.kind]
        for col in self.columns or []:
            if col.field not in known:
                raise ValueError(
                    f"{self.kind} have no field {col.field!r} (fields: {', '.join(known)})"
                )
        return self

    @classmethod
    def of(cls, row: Any) -> ExportSpecModel:
        """The spec of an `ExportSpec` row, its schedule in the tenant's zone unless it
        names its own."""
        spec = cls.model_validate(row.spec)
        return spec.in_zone(row.tenant.timezone)

    def in_zone(self, default: str | None) -> ExportSpecModel:
        """This spec with `default` (a tenant's zone) where the schedule names none."""
        if self.schedule.timezone is not None:
            return self
        schedule = self.schedule.model_copy(update={"timezone": default or "UTC"})
        return self.model_copy(update={"schedule": schedule})

    def effective_columns(self) -> list[Column]:
        return self.columns or [Column(field=f) for f in FIELDS[self.kind]]


_PROBE_RUN = datetime(2026, 1, 4, 6, 0)


def render_file_name(
    template: str, start: date, end: date, run: datetime, spec: str, tenant: str
) -> str:
    return template.format(start=start, end=end, run=run, spec=spec, tenant=tenant)
