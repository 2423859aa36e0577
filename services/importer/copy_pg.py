"""PostgreSQL parses the file: the raw bytes go to COPY, the cells are checked in SQL.

Only plain files take this path: ASCII text (so UTF-8 and Windows-1252 read
the same), no quote character after the header, one line ending throughout, no
line over the feed's limit, fields PostgreSQL can check (text, choice, decimal,
ISO date; no references). The bytes are checked while they stream into COPY, so
the file is read once. Anything else, or any row COPY cannot split into the
header's width, aborts the COPY and the caller reads the file in Python instead.

SQL only accepts cells that are plainly well-formed; every other row goes to the
Python checker (`rows.RowChecker`), which stays the reference for what a value
means and what an error says.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from courier.importer.bulk_pg import stage_columns, staged
from courier.importer.decode import CHUNK, FileRejected
from courier.importer.kinds import Field
from courier.importer.rows import Layout, RowChecker, read
from courier.importer.spec import FeedSpec

RAW = "courier_import_raw"
FIX = "courier_import_fix"
_LABELS = {"utf-8": "UTF-8", "windows-1252": "Windows-1252"}
# What Python's str.strip() removes from ASCII text.
_SPACE = r"E' \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f'"


class NotPlain(Exception):
    """The file needs the Python reader (the COPY is abandoned, nothing is kept)."""


def eligible(spec: FeedSpec) -> bool:
    if spec.encoding not in _LABELS or spec.formats:
        return False
    fields = spec.kind_def.fields
    return all(f.type in ("text", "choice", "decimal", "date") and not f.references for f in fields)


def label(spec: FeedSpec) -> str:
    return _LABELS[spec.encoding]


def header(path: Path, spec: FeedSpec) -> tuple[Layout, int] | None:
    """The layout and the header's length in bytes, if the header is a plain first line."""
    with path.open("rb") as fh:
        first = fh.read(min(CHUNK, spec.max_line_chars))
    end = first.find(b"\n")
    if end < 0 or not first[:end].isascii() or not first[:end].strip():
        return None
    line = first[: end + 1].decode("ascii")
    if "\r" in line[:-2] or len(line) > spec.max_line_chars:
        return None
    try:
        layout, _ = read(spec, iter([line]))
    except FileRejected:
        return None  # the Python reader gives the exact answer
    return layout, end + 1


_SPACES = re.compile(rb"[ \t\x0b\x0c\x1c-\x1f]")


class _Seen:
    """What the bytes held, for the SQL that reads them (trimming cells costs when done)."""

    def __init__(self) -> None:
        self.spaces = False


async def _plain_bytes(
    path: Path, spec: FeedSpec, skip: int, digest: Any, seen: _Seen
) -> AsyncIterator[bytes]:
    """The file after its header, refusing (NotPlain) anything COPY could read differently."""
    quote = spec.dialect.quotechar.encode()
    limit = spec.max_line_chars
    carry = 0  # length of the unfinished line at the end of the previous chunk
    crlf: bool | None = None
    last = b""
    with path.open("rb") as fh:
        head = fh.read(skip)
        digest.update(head)
        crlf = head.endswith(b"\r\n")
        while data := fh.read(CHUNK):
            digest.update(data)
            if not data.isascii() or b"\x00" in data or quote in data or b"\\." in data:
                raise NotPlain
            if crlf:
                # Every line ends in \r\n, also across a chunk boundary.
                joined = last.endswith(b"\r")
                if joined != data.startswith(b"\n"):
                    raise NotPlain
                pairs = data.count(b"\r\n")
                if data.count(b"\n") != pairs + joined:
                    raise NotPlain
                if data.count(b"\r") != pairs + data.endswith(b"\r"):
                    raise NotPlain
            elif b"\r" in data:
                raise NotPlain
            if not seen.spaces and _SPACES.search(data):
                seen.spaces = True
            lines = data.split(b"\n")
            if carry + len(lines[0]) + 1 > limit or max(map(len, lines)) + 1 > limit:
                raise NotPlain
            carry = len(lines[-1]) + (carry if len(lines) == 1 else 0)
            last = data
            yield data
    if crlf and last.endswith(b"\r"):
        raise NotPlain


def _ok_and_value(f: Field, t: str, required: bool, comma: bool) -> tuple[str, str]:
    """SQL for "this trimmed cell is plainly valid" and for its value (used only if valid).

    `translate` and `substr` rather than regular expressions: several times cheaper
    per cell, and no cast is reached unless it cannot fail.
    """
    empty_ok = "false" if required else f"{t} = ''"
    value = f"nullif({t}, '')"
    if f.type in ("text", "choice"):
        ok = f"length({t}) BETWEEN 1 AND {f.max_len}"
        if f.type == "choice":
            ok += " AND " + t + " IN (" + ", ".join(_lit(c) for c in f.choices) + ")"
    elif f.type == "decimal":
        point = "," if comma else "."
        whole = f"split_part(ltrim({t}, '-'), '{point}', 1)"
        ok = (
            f"translate({t}, '0123456789', '') IN ('', '{point}', '-', '-{point}') "
            f"AND position('-' in {t}) IN (0, 1) "
            f"AND length({whole}) BETWEEN 1 AND {12 - f.scale} "
            f"AND length(split_part({t}, '{point}', 2)) <= {f.scale}"
        )
        number = f"replace({t}, ',', '.')" if comma else t
        value = f"CASE WHEN {t} = '' THEN NULL ELSE {number}::numeric(12,{f.scale}) END"
    else:  # ISO date; the day is checked against the month without ever failing a cast
        y, m, d = f"left({t}, 4)::int", f"substr({t}, 6, 2)::int", f"substr({t}, 9, 2)::int"
        leap = f"({y} % 4 = 0 AND {y} % 100 <> 0 OR {y} % 400 = 0)"
        days = (
            f"CASE WHEN {m} IN (4, 6, 9, 11) THEN 30 WHEN {m} = 2 THEN "
            f"CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 31 END"
        )
        ok = (
            f"CASE WHEN length({t}) = 10 AND translate({t}, '0123456789', '') = '--' "
            f"AND substr({t}, 5, 1) = '-' AND substr({t}, 8, 1) = '-' "
            f"THEN {y} >= 1 AND {m} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {days} "
            "ELSE false END"
        )
        value = f"CASE WHEN {t} = '' THEN NULL ELSE {t}::date END"
    return f"({empty_ok} OR ({ok}))", value


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def stage(
    raw: asyncpg.Connection,
    path: Path,
    spec: FeedSpec,
    layout: Layout,
    skip: int,
    stage_table: str,
    checker: RowChecker,
) -> tuple[int, str] | None:
    """Fill `stage_table` from the file; (rows staged, sha256) or None for the Python reader."""
    if layout.width == 1:
        return None  # a blank line would be a row here; the Python reader skips it
    cells = [f"c{i}" for i in range(layout.width)]
    await raw.execute("SAVEPOINT courier_copy")
    await raw.execute(
        f"CREATE TEMP TABLE {RAW} (n integer GENERATED ALWAYS AS IDENTITY, "
        + ", ".join(f"{c} text" for c in cells)
        + ") ON COMMIT DROP"
    )
    digest = hashlib.sha256()
    seen = _Seen()
    try:
        await raw.copy_to_table(
            RAW,
            source=_plain_bytes(path, spec, skip, digest, seen),
            columns=cells,
            format="csv",
            delimiter=spec.dialect.delimiter,
            quote=spec.dialect.quotechar,
        )
    except (NotPlain, asyncpg.PostgresError):
        await raw.execute("ROLLBACK TO SAVEPOINT courier_copy")
        return None
    await raw.execute("RELEASE SAVEPOINT courier_copy")

    comma = spec.decimal_separator == ","
    trim = f"btrim(coalesce(c{{}}, ''), {_SPACE})" if seen.spaces else "coalesce(c{}, '')"
    trimmed = ", ".join(trim.format(pos) + f" AS t{j}" for j, pos in enumerate(layout.positions))
    oks, values, lookups, joins = [], [], [], []
    for j, f in enumerate(layout.fields):
        ok, value = _ok_and_value(f, f"t{j}", spec.is_required(f.name), comma)
        if f.type == "date":
            # A file holds few distinct dates: each is checked once, and the rows
            # look theirs up (the date check is the dearest of all, per cell).
            cell = trim.format(layout.positions[j])
            lookups.append(
                f"d{j} AS MATERIALIZED (SELECT t{j}, {ok} AS ok, CASE WHEN {ok} THEN {value} END "
                f"AS v FROM (SELECT DISTINCT {cell} AS t{j} FROM {RAW}) x)"
            )
            joins.append(f"JOIN d{j} USING (t{j})")
            oks.append(f"d{j}.ok AS ok{j}")
            values.append(f"v{j}")
            oks.append(f"d{j}.v AS v{j}")
        else:
            oks.append(f"{ok} AS ok{j}")
            values.append(f"CASE WHEN ok{j} THEN {value} END")
    all_ok = " AND ".join(f"ok{j}" for j in range(len(layout.fields)))
    names = ", ".join(f'"{f.name}"' for f in layout.fields)
    # Row numbers as the Python reader counts them: the header is row 1.
    # (OFFSET 0 keeps each check computed once per row.)
    await raw.execute(
        f"""
        {"WITH " + ", ".join(lookups) if lookups else ""}
        INSERT INTO {stage_table} (row_number, error, {names})
        SELECT n + 1, CASE WHEN {all_ok} THEN NULL ELSE '?' END, {", ".join(values)}
        FROM (SELECT t.*, {", ".join(oks)}
              FROM (SELECT n, {trimmed} FROM {RAW} OFFSET 0) t {" ".join(joins)} OFFSET 0) r
        """
    )
    await _check_in_python(raw, layout, stage_table, checker)
    staged = await raw.fetchval(f"SELECT count(*) FROM {RAW}")
    await raw.execute(f"DROP TABLE {RAW}")
    return staged, digest.hexdigest()


async def _check_in_python(
    raw: asyncpg.Connection, layout: Layout, stage_table: str, checker: RowChecker
) -> None:
    """Rows SQL did not plainly accept: the Python checker decides, value or error."""
    cells = ", ".join(f"r.c{i}" for i in range(layout.width))
    doubtful = await raw.fetch(
        f"SELECT r.n + 1 AS number, {cells} FROM {RAW} r "
        f"JOIN {stage_table} s ON s.row_number = r.n + 1 WHERE s.error = '?'"
    )
    if not doubtful:
        return
    fixed = [
        staged(checker.check(rec[0], [c or "" for c in list(rec)[1:]]), layout) for rec in doubtful
    ]
    await raw.execute(
        f"CREATE TEMP TABLE {FIX} (LIKE {stage_table}) ON COMMIT DROP; "
        f"DELETE FROM {stage_table} WHERE error = '?'"
    )
    await raw.copy_records_to_table(FIX, records=fixed, columns=stage_columns(layout))
    await raw.execute(f"INSERT INTO {stage_table} SELECT * FROM {FIX}; DROP TABLE {FIX}")
