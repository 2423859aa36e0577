"""The `feeds` section of a spec file: what an import feed accepts and how it is read."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from courier.common.first_days import LiveDays
from courier.common.patterns import compile_pattern
from courier.common.specs import Contact, Expectation, StrictModel, check_timezone
from courier.importer.kinds import Kind, get_kind

KINDS = ("leave_balances", "staff", "roles", "locations")


class Dialect(StrictModel):
    delimiter: Literal[",", ";", "\t", "|"] = ","
    quotechar: Literal['"', "'"] = '"'
    # Files always start with a header row: columns are found by name, never by position.
    header: Literal[True] = True


class FullSyncGuard(StrictModel):
    """A full sync that would delete more than this share of the feed's records is held."""

    max_delete_share: float = Field(default=0.2, gt=0, le=1)
    # Small feeds are not guarded: deleting 1 of 3 records is not alarming.
    min_records: int = Field(default=20, ge=0)


class ApplyWindow(StrictModel):
    """When a feed's files may change the platform's data: `start`-`end` local time.

    `end` at or before `start` runs past midnight. `days: business` opens it only on the
    tenant's business days (the day it opens counts). The zone is the tenant's unless set.
    """

    start: time
    end: time
    days: Literal["business", "every_day"] = "every_day"
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return value if value is None else check_timezone(value)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _wall_clock(cls, value: Any) -> Any:
        # YAML reads an unquoted 22:30 as the number 1350, which would be 00:22:30.
        if not isinstance(value, str | time):
            raise ValueError(f'{value!r}: write the time in quotes, e.g. "22:30"')
        return value

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time without zone (set `timezone` for another zone)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`"01:00-05:00"` is `{start: "01:00", end: "05:00"}`."""
        if isinstance(value, str):
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError(f"apply_window {value!r}: write it as HH:MM-HH:MM")
            return {"start": start.strip(), "end": end.strip()}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ApplyWindow:
        if self.start == self.end:
            raise ValueError("apply_window: start and end are the same time")
        return self

    def label(self) -> str:
        days = "business days" if self.days == "business" else "every day"
        return f"{self.start:%H:%M}-{self.end:%H:%M} {days}"


class FeedSpec(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    kind: Literal["leave_balances", "staff", "roles", "locations"]
    pattern: str
    enabled: bool = True
    dialect: Dialect = Field(default_factory=Dialect)
    encoding: Literal["utf-8", "utf-16", "windows-1252"] = "utf-8"
    # field -> the partner's header name; unmapped fields are looked for under their own name.
    columns: dict[str, str] = Field(default_factory=dict)
    # Header names the partner sends that the platform does not take.
    ignore_columns: list[str] = Field(default_factory=list)
    # field -> strptime format for dates (default ISO `%Y-%m-%d`).
    formats: dict[str, str] = Field(default_factory=dict)
    decimal_separator: Literal[".", ","] = "."
    required: list[str] = Field(default_factory=list)
    keys: list[str] | None = None
    mode: Literal["upsert", "full_sync"] = "upsert"
    on_row_error: Literal["skip", "reject_file"] = "skip"
    max_size_mb: float = Field(default=200, gt=0)
    max_line_chars: int = Field(default=1_000_000, ge=1024)
    full_sync_guard: FullSyncGuard = Field(default_factory=FullSyncGuard)
    # Every file of the feed is a test file (as if sent to /inbound/test/): checked, never applied.
    test: bool = False
    # true: hold every file for a person to approve; a date: hold until (and on) that day;
    # {live_days: N}: hold from the first live file until N business days have passed.
    hold_for_approval: bool | date | LiveDays = False
    # Files arriving outside it are checked at once and applied when it opens.
    apply_window: ApplyWindow | None = None
    # pgp: every file is OpenPGP-encrypted to the tenant's Courier key (decrypted first);
    # require_signature: and signed by the partner's registered key.
    decrypt: Literal["pgp", "none"] = "none"
    require_signature: bool = False
    # zip / gzip: every file is packed so; auto: by the name's suffix, else its first bytes.
    unpack: Literal["zip", "gzip", "auto", "none"] = "none"
    expect: Expectation | None = None
    contacts: list[Contact] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_pattern(value)
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: dict[str, str]) -> dict[str, str]:
        for name, fmt in value.items():
            if "%" not in fmt:
                raise ValueError(f"{name}: {fmt!r} is not a strptime format (e.g. %d/%m/%Y)")
            sample = date(2026, 12, 31)
            if datetime.strptime(sample.strftime(fmt), fmt).date() != sample:
                raise ValueError(f"{name}: {fmt!r} does not hold a whole date")
        return value

    @model_validator(mode="after")
    def _fields_exist(self) -> FeedSpec:
        kind = self.kind_def
        names = set(kind.field_names)

        def unknown(where: str, given: list[str]) -> None:
            bad = [g for g in given if g not in names]
            if bad:
                raise ValueError(
                    f"{where}: unknown field(s) {', '.join(bad)} for kind {self.kind} "
                    f"(fields: {', '.join(kind.field_names)})"
                )

        unknown("columns", list(self.columns))
        unknown("required", self.required)
        unknown("formats", list(self.formats))
        not_dates = [f for f in self.formats if kind.field(f).type != "date"]
        if not_dates:
            raise ValueError(f"formats: {', '.join(not_dates)} are not date fields")
        headers = [self.columns.get(f, f) for f in kind.field_names]
        twice = sorted({h for h in headers if headers.count(h) > 1})
        if twice:
            raise ValueError(f"columns: header name(s) {', '.join(twice)} map to two fields")
        if self.keys is not None and tuple(self.keys) not in kind.allowed_keys():
            allowed = " or ".join(str(list(k)) for k in kind.allowed_keys())
            raise ValueError(f"keys: {self.keys} is not a key of {self.kind} (use {allowed})")
        return self

    @model_validator(mode="after")
    def _signature_needs_decrypt(self) -> FeedSpec:
        if self.require_signature and self.decrypt != "pgp":
            raise ValueError("require_signature: only with `decrypt: pgp`")
        return self

    @property
    def kind_def(self) -> Kind:
        return get_kind(self.kind)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.keys) if self.keys else self.kind_def.key

    def header_for(self, field: str) -> str:
        return self.columns.get(field, field)

    def is_required(self, field: str) -> bool:
        return self.kind_def.field(field).required or field in self.required or field in self.key

    def holds_for_approval(self, today: date) -> bool:
        """The `true` and date forms; `live_days` needs the feed's start (`schedule.hold_of`)."""
        if isinstance(self.hold_for_approval, LiveDays):
            return False
        if isinstance(self.hold_for_approval, bool):
            return self.hold_for_approval
        return today <= self.hold_for_approval

    @classmethod
    def of_feed(cls, name: str, kind: str, pattern: str, stored: dict[str, Any]) -> FeedSpec:
        """The spec a feed row holds (rows made before a field existed get its default)."""
        return cls.model_validate({**stored, "name": name, "kind": kind, "pattern": pattern})
