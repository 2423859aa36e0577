"""Custom cell formats rendered by PostgreSQL, byte for byte as Python renders them.

An export spec's `format` is a `strftime` pattern (dates, times) or a `format()` spec
(numbers). A cell PostgreSQL renders itself costs far less than one formatted in Python
(the whole file can then be PostgreSQL's COPY output), so each format is translated into
a SQL expression when an exact equivalent exists, and None says "Python formats it":

- Dates and times: `to_char` fields without the `TM` prefix, whose month and day names
  are English whatever the server's locale, as Python's C locale writes them; the
  few directives `to_char` has no field for (`%e`, `%k`, `%l`, `%w`, `%U`, `%W`)
  are computed. Time zones (`%z`, `%Z`), epoch seconds and glibc's other flags are
  left to Python (once per distinct value, see `build`).
- Numbers: fill, alignment, sign, `z`, zero padding (grouped too, as Python groups the
  padding zeros), width, `,`/`_` grouping and precision, for the `f`, `F`, `%` and (for
  integers) `d` types. Rounding is Python's: half to even, where `round` and `to_char`
  go half away from zero. A spec Python itself refuses for the field's type stays in
  Python, so the build fails the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Integer, Numeric, Text, and_, case, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

Render = Callable[[Any], ColumnElement[Any]]

# strftime directives with a `to_char` field that writes the same text.
_FIELDS = {
    "Y": "FMYYYY", "y": "YY", "m": "MM", "d": "DD", "H": "HH24", "I": "HH12", "M": "MI",
    "S": "SS", "f": "US", "j": "DDD", "p": "AM", "P": "am", "a": "Dy", "A": "FMDay",
    "b": "Mon", "h": "Mon", "B": "FMMonth", "u": "ID", "V": "IW", "G": "FMIYYY", "g": "IY",
}  # fmt: skip
# glibc's `-` flag (no padding) on a zero-padded number.
_UNPADDED = {"d": "FMDD", "m": "FMMM", "H": "FMHH24", "I": "FMHH12", "M": "FMMI",
             "S": "FMSS", "j": "FMDDD", "y": "FMYY"}  # fmt: skip
# Directives that stand for others (C locale).
_COMPOSITE = {"D": "%m/%d/%y", "F": "%Y-%m-%d", "T": "%H:%M:%S", "R": "%H:%M",
              "r": "%I:%M:%S %p", "c": "%a %b %e %H:%M:%S %Y", "x": "%m/%d/%y",
              "X": "%H:%M:%S", "n": "\n", "t": "\t"}  # fmt: skip


def _field(name: str) -> Render:
    return lambda v: cast(func.extract(name, v), Integer)


def _space_padded(pattern: str) -> Render:
    return lambda v: func.lpad(func.to_char(v, pattern), 2, literal(" "))


def _two_digits(number: Render) -> Render:
    return lambda v: func.to_char(number(v), "FM00")


def _week(first_weekday_offset: int) -> Render:
    """`%U` (weeks start on Sunday) or `%W` (on Monday): days before the first are week 0."""
    doy, dow = _field("doy"), _field("dow")
    return _two_digits(
        lambda v: func.div(doy(v) + 6 - func.mod(dow(v) + first_weekday_offset, 7), 7)
    )


_COMPUTED: dict[str, Render] = {
    "e": _space_padded("FMDD"),
    "k": _space_padded("FMHH24"),
    "l": _space_padded("FMHH12"),
    "w": lambda v: cast(_field("dow")(v), Text),
    "U": _week(0),
    "W": _week(6),
}


def strftime_sql(fmt: str) -> Render | None:
    """`value.strftime(fmt)` as a function of a date or local-timestamp expression."""
    tokens = _tokens(fmt)
    if tokens is None:
        return None
    parts: list[str | Render] = []  # `to_char` patterns and computed directives
    pattern: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            if pattern and not (pattern[-1] + token).count('"'):
                pattern.append('""')  # fields side by side: `YY` `YY` is not `YYYY`
            pattern.append(token)
            continue
        if pattern:
            parts.append("".join(pattern))
            pattern = []
        parts.append(token)
    if pattern:
        parts.append("".join(pattern))
    if not parts:
        return lambda v: literal("")
    return lambda v: _concat([func.to_char(v, p) if isinstance(p, str) else p(v) for p in parts])


def _tokens(fmt: str) -> list[str | Render] | None:
    """`to_char` pattern pieces and computed directives, in order; None if one has no
    exact equivalent."""
    out: list[str | Render] = []
    text, i = "", 0
    while i < len(fmt):
        if fmt[i] != "%":
            text += fmt[i]
            i += 1
            continue
        flag = fmt[i + 1 : i + 2] == "-"
        directive = fmt[i + 2 : i + 3] if flag else fmt[i + 1 : i + 2]
        i += 3 if flag else 2
        if directive == "%" and not flag:
            text += "%"
            continue
        if text:
            out.append(_literal(text))
            text = ""
        if flag:
            if directive not in _UNPADDED:
                return None
            out.append(_UNPADDED[directive])
        elif directive in _COMPOSITE:
            inner = _tokens(_COMPOSITE[directive])
            if inner is None:
                return None
            out.extend(inner)
        elif directive in _FIELDS:
            out.append(_FIELDS[directive])
        elif directive in _COMPUTED:
            out.append(_COMPUTED[directive])
        else:
            return None
    if text:
        out.append(_literal(text))
    return out


def _literal(text: str) -> str:
    """Literal text in a `to_char` pattern: double-quoted, so no letter is read as a field."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _concat(exprs: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    out = exprs[0]
    for e in exprs[1:]:
        out = out.op("||")(e)
    return out


# fill, align, sign, z, 0, width, grouping, precision, type (`#`, `n`, `e`, `g`… stay Python)
_SPEC = re.compile(
    r"^(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<zero>0)?"
    r"(?P<width>[0-9]+)?(?P<group>[,_])?(?:\.(?P<precision>[0-9]+))?(?P<type>[fF%d])?$",
    re.DOTALL,
)


@dataclass(frozen=True)
class NumberFormat:
    fill: str
    align: str
    sign: str
    z: bool
    width: int
    group: str
    precision: int | None  # None: an integer's digits, no point
    percent: bool
    grouped_zeros: bool  # zero padding that Python groups, as digits

    @classmethod
    def parse(cls, fmt: str, integer: bool) -> NumberFormat | None:
        m = _SPEC.match(fmt)
        if m is None or not _python_accepts(fmt, integer):
            return None
        kind = m["type"] or ""
        if not integer and kind in ("", "d"):
            return None  # Decimal's own repr rules
        if kind in ("", "d") and m["precision"] is not None:
            return None
        precision = int(m["precision"]) if m["precision"] is not None else None
        if kind in ("f", "F", "%") and precision is None:
            if not integer:
                return None  # Decimal's own digits
            precision = 6
        fill = m["fill"] or ""
        align = m["align"] or ""
        if m["zero"] and not fill:
            fill = "0"
            align = align or "="
        fill = fill or " "
        align = align or ">"
        return cls(
            fill=fill,
            align=align,
            sign=m["sign"] or "-",
            # (Decimal ignores `z` with `F`: `format(Decimal("-0.01"), "z.0F")` is "-0".)
            z=bool(m["z"]) and (integer or kind != "F"),
            width=int(m["width"] or 0),
            group=m["group"] or "",
            precision=precision,
            percent=kind == "%",
            grouped_zeros=bool(m["group"]) and fill == "0" and align == "=",
        )


def _python_accepts(fmt: str, integer: bool) -> bool:
    try:
        format(7 if integer else Decimal("7.25"), fmt)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Stored:
    """What a number column can hold: its decimal places (None: any) and at most how
    many digits before the point. Knowing them spares rounding values that need none
    and keeps `to_char` patterns short (a 40-digit one measured twice as slow)."""

    scale: int | None = None
    whole_digits: int = 40


def number_sql(fmt: str, integer: bool, stored: Stored | None = None) -> Render | None:
    """`format(value, fmt)` as a function of a number expression (int or Decimal)."""
    spec = NumberFormat.parse(fmt, integer)
    if spec is None:
        return None
    kept = stored or (Stored(scale=0, whole_digits=20) if integer else Stored())
    return lambda v: _number(spec, kept, integer, v)


def _number(spec: NumberFormat, stored: Stored, integer: bool, value: Any) -> ColumnElement[Any]:
    whole_digits = stored.whole_digits + (2 if spec.percent else 0)
    if integer:
        x: Any = cast(value, BigInteger)  # abs() of the smallest int4 is no int4
        if spec.percent:
            x = x * 100
    else:
        x = value * literal(100, Numeric) if spec.percent else value
    negative = x < 0
    places = spec.precision
    if places is None or (stored.scale is not None and places >= stored.scale):
        # Every digit is kept: no rounding, only zeros to append.
        magnitude = func.abs(x)
        extra = 0 if places is None else places - (stored.scale or 0)
        point = "." if places and not stored.scale else ""
        text = cast(magnitude, Text)
        if extra or point:
            text = text.op("||")(literal(point + "0" * extra))
    else:
        magnitude = _half_even(func.abs(cast(x, Numeric)), places)
        whole_digits += 1  # 9.99 rounds to 10
        text = cast(magnitude, Text)
        if spec.z:
            negative = and_(negative, magnitude != 0)
    sign = case((negative, literal("-")), else_=literal({"-": "", "+": "+", " ": " "}[spec.sign]))
    suffix = "%" if spec.percent else ""
    if spec.grouped_zeros:
        # The padding zeros are digits, grouped; the width counts the sign in.
        room = spec.width - (spec.precision + 1 if spec.precision else 0) - len(suffix)
        plain = _grouped(magnitude, spec, whole_digits, _zero_digits(room))
        signed = _grouped(magnitude, spec, whole_digits, _zero_digits(room - 1))
        has_sign = negative if spec.sign == "-" else literal(True)
        body = case((has_sign, signed), else_=plain)
        return _concat([sign, body, literal(suffix)]) if suffix else sign.op("||")(body)
    body = _grouped(magnitude, spec, whole_digits, 1) if spec.group else text
    if suffix:
        body = body.op("||")(literal(suffix))
    if spec.width == 0:
        return sign.op("||")(body)
    if spec.align == "=":
        pad = _padding(spec, func.length(sign) + func.length(body))
        return _concat([sign, pad, body])
    cell = sign.op("||")(body)
    missing = func.greatest(spec.width - func.length(cell), 0)
    if spec.align == ">":
        return func.repeat(spec.fill, missing).op("||")(cell)
    if spec.align == "<":
        return cell.op("||")(func.repeat(spec.fill, missing))
    left = cast(func.div(missing, 2), Integer)
    return _concat([func.repeat(spec.fill, left), cell, func.repeat(spec.fill, missing - left)])


def _padding(spec: NumberFormat, length: Any) -> ColumnElement[Any]:
    return func.repeat(spec.fill, func.greatest(spec.width - length, 0))


def _zero_digits(room: int) -> int:
    """How many digits, zeros in front, fill `room` characters once grouped in threes
    (a group separator never comes first: one more zero instead)."""
    digits = 1
    while digits + (digits - 1) // 3 < room:
        digits += 1
    return digits


def _grouped(magnitude: Any, spec: NumberFormat, whole_digits: int, zeros: int) -> Any:
    """The digits in groups of three, at least `zeros` before the point (zeros in front)."""
    chars = []
    for n in range(max(whole_digits, zeros, 1) - 1, -1, -1):  # n: the digit's power of ten
        chars.append("0" if n < max(zeros, 1) else "9")
        if n and n % 3 == 0:
            chars.append(",")
    pattern = "FM" + "".join(chars)
    if spec.precision:
        pattern += "." + "0" * spec.precision
    text = func.to_char(magnitude, pattern)
    return func.replace(text, ",", "_") if spec.group == "_" else text


def _half_even(x: Any, places: int) -> ColumnElement[Any]:
    """`x` (not negative) rounded to `places` decimals, ties to even, with that scale."""
    scaled = x * literal(10**places, Numeric)
    down = func.trunc(x, places)
    halfway = scaled - func.trunc(scaled) == literal(Decimal("0.5"), Numeric)
    odd = func.mod(func.trunc(scaled), 2) != 0
    step = literal(Decimal(1).scaleb(-places), Numeric)
    return case((halfway & odd, down + step), (halfway, down), else_=func.round(x, places))
