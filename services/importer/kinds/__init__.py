"""What each import kind holds: its table, fields, key and references.

A kind is data, not code: the row-wise and the bulk paths both read it, so a
new kind is one small module here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Table

FieldType = Literal["text", "decimal", "date", "email", "choice"]


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType = "text"
    max_len: int = 200
    required: bool = False
    # decimal: digits after the point the column keeps; more is an error, not rounding.
    scale: int = 2
    choices: tuple[str, ...] = ()
    # The kind whose `code` this field names; checked against the tenant's rows
    # and the rows earlier in the same file.
    references: str | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    table: Table
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    # Other field sets a feed may choose as its key.
    alternative_keys: tuple[tuple[str, ...], ...] = ()

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def allowed_keys(self) -> tuple[tuple[str, ...], ...]:
        return (self.key, *self.alternative_keys)


def kinds() -> dict[str, Kind]:
    from courier.importer.kinds import leave_balances, locations, roles, staff

    return {k.name: k for k in (leave_balances.KIND, staff.KIND, roles.KIND, locations.KIND)}


def get_kind(name: str) -> Kind:
    return kinds()[name]
