"""Spec blocks that more than one service reads from the YAML applied with `courier feeds apply`.

A YAML document names a tenant and holds sections (`feeds`, `sources`, `exports`,
…); each section's full model belongs to the service that acts on it. What is
here is shared: when a file is expected (the monitor watches it, the importer
stores it with the feed) and who to tell.
"""

from __future__ import annotations

from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def check_optional_timezone(value: str | None) -> str | None:
    """None means "the tenant's zone", resolved where the tenant is at hand."""
    return None if value is None else check_timezone(value)


# Which days a window or schedule is on: every day, or the tenant's business days
# (no weekends, public holidays or closures; see `courier.common.calendars`).
Days = Literal["every_day", "business"]


def check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f"invalid cron expression {value!r}")
    return value


class Contact(StrictModel):
    name: str
    email: EmailStr | None = None
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")


class Expectation(StrictModel):
    """When a file is due: `cron` in `timezone` (None: the tenant's), a window around it,
    on every day or on business days only, minus dates to skip."""

    cron: str
    timezone: str | None = None
    days: Days = "every_day"
    window_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)
    warn_before_minutes: int = Field(default=30, ge=0)
    skip_dates: list[date] = Field(default_factory=list)
    skip_weekends: bool = False

    _cron = field_validator("cron")(check_cron)
    _tz = field_validator("timezone")(check_optional_timezone)
