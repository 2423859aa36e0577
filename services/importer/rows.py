"""From lines of CSV to checked rows: header check, then one typed row (or its error) per record.

Row numbers count the header as row 1, as a spreadsheet shows them. Values are
stored as sent apart from surrounding spaces: a cell starting with `=` or `+`
is data here (exports neutralise formulas, imports keep what the partner sent).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from courier.importer.decode import FileRejected
from courier.importer.kinds import Field
from courier.importer.spec import FeedSpec

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_OTHER_DELIMITERS = (",", ";", "\t", "|")


@dataclass
class Layout:
    """Where each field sits in the partner's file."""

    fields: list[Field]  # fields present, in the order rows carry them
    positions: list[int]
    width: int
    key_positions: list[int]  # positions in `fields` of the key fields


@dataclass(slots=True)
class Row:
    number: int
    values: tuple[Any, ...] | None  # in `Layout.fields` order; None when errored
    key: tuple[str, ...] | None  # also set on errored rows whose key could be read
    error: str | None = None

    def key_text(self) -> str | None:
        return "/".join(self.key) if self.key else None


@dataclass
class HeaderCheck:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)

    def message(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing columns: " + ", ".join(self.missing))
        if self.unexpected:
            parts.append("unexpected columns: " + ", ".join(self.unexpected))
        if self.duplicated:
            parts.append("duplicated columns: " + ", ".join(self.duplicated))
        return "wrong header: " + "; ".join(parts)


def check_header(spec: FeedSpec, header: list[str]) -> Layout:
    kind = spec.kind_def
    names = [h.strip() for h in header]
    by_header = {spec.header_for(f.name): f for f in kind.fields}
    check = HeaderCheck()
    seen: set[str] = set()
    for n in names:
        if n in seen and n not in check.duplicated:
            check.duplicated.append(n)
        seen.add(n)
    check.missing = [
        spec.header_for(f.name)
        for f in kind.fields
        if spec.is_required(f.name) and spec.header_for(f.name) not in seen
    ]
    check.unexpected = [
        n for n in names if n and n not in by_header and n not in spec.ignore_columns
    ]
    if check.missing or check.unexpected or check.duplicated:
        delimiter = spec.dialect.delimiter
        if len(names) == 1:
            for other in _OTHER_DELIMITERS:
                if other != delimiter and other in names[0]:
                    raise FileRejected(
                        f"wrong delimiter: the header is separated by {other!r}, "
                        f"the feed expects {delimiter!r}",
                        found=other,
                        expected=delimiter,
                    )
        raise FileRejected(
            check.message(),
            missing=check.missing,
            unexpected=check.unexpected,
            duplicated=check.duplicated,
            expected=[spec.header_for(f.name) for f in kind.fields],
        )
    present = [(i, by_header[n]) for i, n in enumerate(names) if n in by_header]
    fields = [f for _, f in present]
    key_positions = [next(j for j, f in enumerate(fields) if f.name == k) for k in spec.key]
    return Layout(fields, [i for i, _ in present], len(names), key_positions)


Convert = Callable[[str], Any]


class _Bad(ValueError):
    pass


def _empty(name: str, required: bool) -> None:
    if required:
        raise _Bad(f"{name}: required")
    return None


def _converter(spec: FeedSpec, f: Field) -> Convert:
    required = spec.is_required(f.name)
    name = f.name

    def text(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            return _empty(name, required)
        if len(value) > f.max_len:
            raise _Bad(f"{name}: longer than {f.max_len} characters")
        return value

    if f.type == "text":
        return text
    if f.type == "email":

        def email(raw: str) -> str | None:
            value = text(raw)
            if value is not None and not _EMAIL.match(value):
                raise _Bad(f"{name}: {value!r} is not an e-mail address")
            return value

        return email
    if f.type == "choice":

        def choice(raw: str) -> str | None:
            value = text(raw)
            if value is not None and value not in f.choices:
                raise _Bad(f"{name}: {value!r} is not one of {', '.join(f.choices)}")
            return value

        return choice
    if f.type == "decimal":
        step = Decimal(1).scaleb(-f.scale)
        comma = spec.decimal_separator == ","
        limit = Decimal(10) ** (12 - f.scale)

        def decimal(raw: str) -> Decimal | None:
            value = raw.strip()
            if not value:
                return _empty(name, required)
            try:
                number = Decimal(value.replace(",", ".") if comma else value)
            except InvalidOperation:
                raise _Bad(f"{name}: {value!r} is not a number") from None
            if not number.is_finite():
                raise _Bad(f"{name}: {value!r} is not a number")
            if abs(number) >= limit:
                raise _Bad(f"{name}: {value!r} is out of range")
            quantized = number.quantize(step)
            if quantized != number:
                raise _Bad(f"{name}: {value!r} has more than {f.scale} decimal places")
            return quantized

        return decimal
    fmt = spec.formats.get(name)
    if fmt is None:

        def iso_date(raw: str) -> date | None:
            value = raw.strip()
            if not value:
                return _empty(name, required)
            try:
                if len(value) != 10:
                    raise ValueError
                return date.fromisoformat(value)
            except ValueError:
                raise _Bad(f"{name}: {value!r} is not a date (expected YYYY-MM-DD)") from None

        return iso_date

    def formatted_date(raw: str) -> date | None:
        value = text(raw)
        if value is None:
            return None
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            raise _Bad(f"{name}: {value!r} is not a date (expected {fmt})") from None

    return formatted_date


class RowChecker:
    """Turns a record's cells into a typed row; references are checked against `known` codes."""

    def __init__(self, spec: FeedSpec, layout: Layout, known: dict[str, set[str]]) -> None:
        self.spec = spec
        self.layout = layout
        self.known = known
        self.pairs = [
            (pos, _converter(spec, f))
            for pos, f in zip(layout.positions, layout.fields, strict=True)
        ]
        self.refs = [(j, f) for j, f in enumerate(layout.fields) if f.references]
        # A row may name a record of its own kind created earlier in the file.
        self.self_ref = spec.kind in {f.references for _, f in self.refs}

    def check(self, number: int, cells: list[str]) -> Row:
        layout = self.layout
        if len(cells) != layout.width:
            return Row(number, None, None, f"expected {layout.width} values, found {len(cells)}")
        try:
            # The common case in one pass; a bad cell takes the slow path below.
            values = [convert(cells[pos]) for pos, convert in self.pairs]
        except _Bad:
            return self._errored(number, cells)
        key = tuple([values[j] for j in layout.key_positions])
        if self.refs and self._unknown(values):
            return self._errored(number, cells)
        if self.self_ref:
            self.known.setdefault(self.spec.kind, set()).add(key[0])
        return Row(number, tuple(values), key)

    def _unknown(self, values: list[Any]) -> list[str]:
        errors = []
        for j, f in self.refs:
            code = values[j]
            if code is not None and code not in self.known.get(f.references or "", ()):
                errors.append(f"{f.name}: unknown {(f.references or '')[:-1]} {code!r}")
        return errors

    def _errored(self, number: int, cells: list[str]) -> Row:
        """Every problem of the row, in column order, and its key if that could be read."""
        values: list[Any] = []
        errors: list[str] = []
        for pos, convert in self.pairs:
            try:
                values.append(convert(cells[pos]))
            except _Bad as exc:
                values.append(None)
                errors.append(str(exc))
        errors += self._unknown(values)
        key_values = [values[j] for j in self.layout.key_positions]
        key = None if None in key_values else tuple(str(v) for v in key_values)
        return Row(number, None, key, "; ".join(errors))


def read(spec: FeedSpec, lines: Iterator[str]) -> tuple[Layout, Iterator[tuple[int, list[str]]]]:
    """The header's layout, then (row number, cells) per non-blank record."""
    csv.field_size_limit(spec.max_line_chars)
    reader = csv.reader(
        lines,
        delimiter=spec.dialect.delimiter,
        quotechar=spec.dialect.quotechar,
        strict=True,
    )
    try:
        header = next(reader)
        while not any(h.strip() for h in header):
            header = next(reader)
    except StopIteration:
        raise FileRejected("empty file: no header and no rows") from None
    except csv.Error as exc:
        raise FileRejected(f"unreadable header: {exc}") from None
    layout = check_header(spec, header)

    def records() -> Iterator[tuple[int, list[str]]]:
        number = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _malformed(number + 1, exc) from None
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            number += 1
            yield number, cells

    return layout, records()


def _malformed(number: int, exc: csv.Error) -> FileRejected:
    text = str(exc)
    if "unexpected end of data" in text:
        return FileRejected(
            f"row {number}: unterminated quoted field (the quote is never closed)", row=number
        )
    if "field larger than field limit" in text:
        return FileRejected(f"row {number}: a field is longer than the feed's limit", row=number)
    return FileRejected(f"row {number}: malformed CSV: {text}", row=number)
