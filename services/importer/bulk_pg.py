"""The bulk path (PostgreSQL): COPY into a staging table, then compare, audit and merge in SQL.

Rows stream from the parser straight into COPY, so memory does not grow with
the file. Every later step is one set-based statement over the staging table;
the audit rows say exactly what the row-wise path would say.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
from sqlalchemy import UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import ImportRecord
from courier.importer.changes import Context, Outcome, guard_reason, reject_reason
from courier.importer.kinds import Field
from courier.importer.rows import Layout, Row

STAGE = "courier_import_stage"
BATCH = 50_000
ANALYZE_TARGET_FROM = 50_000


# A created record's id: the import's id with the row number as its last 48 bits.
# Unique (an import's rows share its 80 random bits, and row numbers are unique in
# a file) and ascending, so the primary key grows at its end instead of at random
# pages as with `gen_random_uuid()` (a quarter of the insert's cost).
_ROW_ID = "(left($2::text, 24) || lpad(to_hex(p.row_number), 12, '0'))::uuid"


def _sql_type(f: Field) -> str:
    if f.type == "decimal":
        return f"numeric(12,{f.scale})"
    if f.type == "date":
        return "date"
    return "text"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json(pairs: list[tuple[str, str, str, str]]) -> str:
    """A JSON object text of `"name": [old, new]` for each pair whose condition holds.

    Built as text (values escaped by `to_json`): much cheaper per row than jsonb.
    """
    if not pairs:
        return "'{}'"
    parts = ", ".join(
        f"CASE WHEN {cond} THEN '\"{name}\": [' || {old} || ', ' || {new} || ']' END"
        for name, cond, old, new in pairs
    )
    return f"'{{' || concat_ws(', ', {parts}) || '}}'"


def _text(expr: str, f: Field) -> str:
    """A value as JSON text: a string, or null.

    Numbers and dates print without anything JSON escapes, so they are only quoted:
    `to_json` on every value was half the cost of building the audit.
    """
    if f.type in ("decimal", "date"):
        return f"""coalesce('"' || {expr}::text || '"', 'null')"""
    return f"coalesce(to_json({expr}::text)::text, 'null')"


async def driver(session: AsyncSession) -> Any:
    conn = await session.connection()
    return (await conn.get_raw_connection()).driver_connection


async def create_stage(raw: Any, fields: list[Field]) -> None:
    columns = ", ".join(f"{_q(f.name)} {_sql_type(f)}" for f in fields)
    await raw.execute(
        f"CREATE TEMP TABLE {STAGE} (row_number integer, error text, {columns}) ON COMMIT DROP"
    )


def comparison(compared: list[Field]) -> tuple[str, str, str]:
    """SQL for "target `t` differs from staged `s`", and the audit JSON of a created and
    of an updated record: one definition, so the small and bulk paths audit alike."""
    differs = " OR ".join(f"t.{_q(f.name)} IS DISTINCT FROM s.{_q(f.name)}" for f in compared)
    created_json = _json(
        [(f.name, f"s.{_q(f.name)} IS NOT NULL", "'null'", _text(f"s.{_q(f.name)}", f))
         for f in compared]
    )  # fmt: skip
    updated_json = _json(
        [(f.name, f"t.{_q(f.name)} IS DISTINCT FROM s.{_q(f.name)}",
          _text(f"t.{_q(f.name)}", f), _text(f"s.{_q(f.name)}", f)) for f in compared]
    )  # fmt: skip
    return differs or "false", created_json, updated_json


def staged(row: Row, layout: Layout) -> tuple[Any, ...]:
    """A checked row as a staging record: its values, or its error and what key it has."""
    if row.values is not None:
        return (row.number, None, *row.values)
    values: list[Any] = [None] * len(layout.fields)
    if row.key is not None:
        for j, k in zip(layout.key_positions, row.key, strict=True):
            values[j] = k
    return (row.number, row.error, *values)


def stage_columns(layout: Layout) -> list[str]:
    return ["row_number", "error", *(f.name for f in layout.fields)]


async def run(session: AsyncSession, ctx: Context, rows: Iterator[Row]) -> Outcome:
    """Stage checked rows from Python, then merge."""
    raw = await driver(session)
    await create_stage(raw, ctx.layout.fields)
    batch: list[tuple[Any, ...]] = []
    names = stage_columns(ctx.layout)
    for row in rows:
        batch.append(staged(row, ctx.layout))
        if len(batch) >= BATCH:
            # One COPY per batch: bounded memory, and the loop breathes between them.
            await raw.copy_records_to_table(STAGE, records=batch, columns=names)
            batch = []
    if batch:
        await raw.copy_records_to_table(STAGE, records=batch, columns=names)
    return await merge(raw, ctx)


async def merge(raw: Any, ctx: Context) -> Outcome:
    """Compare the staged rows with the table, audit every row, apply the changes."""
    table = _q(ctx.spec.kind_def.table.name)
    # Sorts and hash joins over the whole file stay in memory.
    await raw.execute("SET LOCAL work_mem = '256MB'")
    await raw.execute(f"ANALYZE {STAGE}")
    staged = await raw.fetchval(f"SELECT count(*) FROM {STAGE}")
    if staged >= ANALYZE_TARGET_FROM:
        # A large file meets the target table's real size, not stale statistics
        # (a table a previous import just filled still looks empty to the planner).
        await raw.execute(f"ANALYZE {table}")
    if await _unique_key_finds_repeats(raw, ctx):
        # Every row will be inserted, so the table's unique key refuses a repeated key
        # on its own, and the search for repeats (a hash of every key) is skipped. If
        # the file does repeat a key, the work is undone and done again with the search.
        await raw.execute("SAVEPOINT courier_merge")
        try:
            out = await _merge(raw, ctx, find_repeats=False)
        except asyncpg.UniqueViolationError:
            await raw.execute("ROLLBACK TO SAVEPOINT courier_merge")
        else:
            await raw.execute("RELEASE SAVEPOINT courier_merge")
            return out
    return await _merge(raw, ctx, find_repeats=True)


async def _unique_key_finds_repeats(raw: Any, ctx: Context) -> bool:
    """True when inserting the file would itself fail on a repeated key.

    That is: the rows are applied, row errors do not reject the file (a rejection
    lists the repeats among its errors), the table has a unique constraint on the
    tenant and the feed's key, and the tenant has no rows yet, so every row is created.
    """
    spec = ctx.spec
    table = spec.kind_def.table
    if not ctx.apply or spec.on_row_error == "reject_file":
        return False
    keyed = {"tenant_id", *spec.key}
    if not any(
        isinstance(c, UniqueConstraint) and {col.name for col in c.columns} == keyed
        for c in table.constraints
    ):
        return False
    return not await raw.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {_q(table.name)} WHERE tenant_id = $1)", ctx.tenant_id
    )


async def _merge(raw: Any, ctx: Context, *, find_repeats: bool) -> Outcome:
    spec = ctx.spec
    kind = spec.kind_def
    table = _q(kind.table.name)
    fields = ctx.layout.fields
    key = list(spec.key)
    compared = [f for f in fields if f.name not in key]
    others = [f for f in kind.fields if f.name not in key]
    on_key = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in key)
    key_text = "concat_ws('/', " + ", ".join(f"s.{_q(k)}" for k in key) + ")"
    t_key_text = "concat_ws('/', " + ", ".join(f"t.{_q(k)}" for k in key) + ")"
    partition = ", ".join(_q(k) for k in key)
    # A key seen again is an error on the later row, naming the first. Finding out
    # whether any key repeats (hashing) is much cheaper than ranking every row.
    repeats = find_repeats and await raw.fetchval(
        f"SELECT 1 FROM {STAGE} WHERE error IS NULL GROUP BY {partition} HAVING count(*) > 1 "
        "LIMIT 1"
    )
    if repeats:
        await raw.execute(
            f"""
            UPDATE {STAGE} s SET error = 'duplicate key ' || {key_text}
                                       || ' (first on row ' || d.first || ')'
            FROM (SELECT row_number, first_value(row_number) OVER w AS first
                  FROM {STAGE} WHERE error IS NULL
                  WINDOW w AS (PARTITION BY {partition} ORDER BY row_number)) d
            WHERE d.row_number = s.row_number AND d.first <> d.row_number
            """
        )
    out = Outcome()
    out.counts.errored = await raw.fetchval(f"SELECT count(*) FROM {STAGE} WHERE error IS NOT NULL")

    records_table = _q(ImportRecord.__tablename__)
    audit_errors = f"""
        INSERT INTO {records_table} (import_id, row_number, seq, record_key, action, error)
        SELECT $1, s.row_number, 0,
               CASE WHEN {" AND ".join(f"s.{_q(k)} IS NOT NULL" for k in key)}
                    THEN {key_text} END,
               'errored', s.error
        FROM {STAGE} s WHERE s.error IS NOT NULL
    """
    if out.counts.errored and spec.on_row_error == "reject_file":
        out.rejected = reject_reason(out.counts.errored)
        await raw.execute(audit_errors, ctx.import_id)
        return out

    missing = f"""
        FROM {table} t
        WHERE t.tenant_id = $1 AND t.feed_id = $2
          AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE {on_key})
    """
    if spec.mode == "full_sync":
        owned = await raw.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1 AND feed_id = $2",
            ctx.tenant_id,
            ctx.feed_id,
        )
        out.counts.deleted = await raw.fetchval(
            f"SELECT count(*) {missing}", ctx.tenant_id, ctx.feed_id
        )
        out.held = guard_reason(ctx, out.counts.deleted, owned)

    differs, created_json, updated_json = comparison(compared)
    deleted_json = _json(
        [(f.name, f"t.{_q(f.name)} IS NOT NULL", _text(f"t.{_q(f.name)}", f), "'null'")
         for f in others]
    )  # fmt: skip
    await raw.execute(audit_errors, ctx.import_id)
    apply = ctx.apply and not out.held
    if spec.mode == "full_sync" and out.counts.deleted:
        await raw.execute(
            f"""
            INSERT INTO {records_table} (import_id, row_number, seq, record_key, action, changes)
            SELECT $3, 0, row_number() OVER (ORDER BY {t_key_text}), {t_key_text}, 'deleted',
                   ({deleted_json})::json {missing}
            """,
            ctx.tenant_id,
            ctx.feed_id,
            ctx.import_id,
        )
        if apply:
            await raw.execute(f"DELETE {missing}", ctx.tenant_id, ctx.feed_id)

    # One pass over the file: compare each row with its record once, then audit,
    # insert and update from that same comparison.
    names = [_q(f.name) for f in fields]
    writes = ""
    if apply:
        sets = ", ".join(f"{n} = p.{n}" for n in names if n not in {_q(k) for k in key})
        writes = f"""
        , inserted AS (
            INSERT INTO {table} (id, tenant_id, feed_id, updated_at, {", ".join(names)})
            SELECT {_ROW_ID}, $1, $3, now(), {", ".join(f"p.{n}" for n in names)}
            FROM planned p WHERE p.action = 'created'
        ), changed AS (
            UPDATE {table} t SET {sets}, feed_id = $3, updated_at = now()
            FROM planned p WHERE t.id = p.target_id AND p.action = 'updated'
        )"""
    counted = await raw.fetch(
        f"""
        WITH planned AS MATERIALIZED (
            SELECT s.*, {key_text} AS record_key, t.id AS target_id, a.action,
                   CASE a.action WHEN 'created' THEN {created_json}
                                 WHEN 'updated' THEN {updated_json} END AS changes
            FROM {STAGE} s
            LEFT JOIN {table} t ON t.tenant_id = $1 AND {on_key}
            CROSS JOIN LATERAL (SELECT CASE WHEN t.id IS NULL THEN 'created'
                                            WHEN {differs} THEN 'updated'
                                            ELSE 'unchanged' END AS action) a
            WHERE s.error IS NULL
        ), audited AS (
            INSERT INTO {records_table} (import_id, row_number, seq, record_key, action, changes)
            SELECT $2, p.row_number, 0, p.record_key, p.action, p.changes::json FROM planned p
        ){writes}
        SELECT action, count(*) FROM planned GROUP BY action
        """,
        *(ctx.tenant_id, ctx.import_id, ctx.feed_id)[: 3 if apply else 2],
    )
    for action, n in counted:
        setattr(out.counts, action, n)
    return out
