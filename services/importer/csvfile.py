"""Decoding and header checks shared by every import kind."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


class FileRejected(Exception):
    """The whole file is refused; `details` says exactly why, for the partner."""

    def __init__(self, reason: str, **details: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def decode(data: bytes) -> str:
    if not data.strip():
        raise FileRejected("empty file: no header and no rows")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}",
            offset=exc.start,
        ) from exc


@dataclass
class HeaderCheck:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.duplicated)

    def message(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing columns: " + ", ".join(self.missing))
        if self.unexpected:
            parts.append("unexpected columns: " + ", ".join(self.unexpected))
        if self.duplicated:
            parts.append("duplicated columns: " + ", ".join(self.duplicated))
        return "wrong header: " + "; ".join(parts)


def check_header(header: Sequence[str], expected: Sequence[str]) -> HeaderCheck:
    names = [h.strip() for h in header]
    seen: set[str] = set()
    dup = []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    return HeaderCheck(
        missing=[c for c in expected if c not in seen],
        unexpected=[n for n in names if n not in expected and n],
        duplicated=dup,
    )


def read_rows(
    text: str, expected: Sequence[str]
) -> tuple[list[str], Iterator[tuple[int, dict[str, str] | str]]]:
    """Header, then (row number, values by column) per row; a malformed row yields its error.

    Row numbers count the header as row 1, as a spreadsheet shows them.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise FileRejected("empty file: no header and no rows") from exc
    except csv.Error as exc:
        raise FileRejected(f"unreadable header: {exc}") from exc
    check = check_header(header, expected)
    if not check.ok:
        raise FileRejected(
            check.message(),
            missing=check.missing,
            unexpected=check.unexpected,
            duplicated=check.duplicated,
            expected=list(expected),
        )
    names = [h.strip() for h in header]

    def _rows() -> Iterator[tuple[int, dict[str, str] | str]]:
        row_number = 1
        while True:
            row_number += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileRejected(f"row {row_number}: malformed CSV: {exc}") from exc
            if not values or (len(values) == 1 and not values[0].strip()):
                row_number -= 1
                continue
            if len(values) != len(names):
                yield row_number, f"expected {len(names)} values, found {len(values)}"
                continue
            yield row_number, dict(zip(names, values, strict=True))

    return names, _rows()
