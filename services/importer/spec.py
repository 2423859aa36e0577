"""The `feeds` section of a spec file: what an import feed accepts and how it is read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from courier.common.specs import Contact, Expectation, StrictModel
from courier.importer.patterns import compile_pattern

KINDS = ("leave_balances", "staff", "roles", "locations")


class FeedSpec(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    kind: Literal["leave_balances", "staff", "roles", "locations"]
    pattern: str
    enabled: bool = True
    expect: Expectation | None = None
    contacts: list[Contact] = Field(default_factory=list)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        compile_pattern(value)
        return value
