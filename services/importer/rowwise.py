"""The portable path (SQLite): compare and apply row by row in Python, in one transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.db.models import ImportRecord
from courier.importer.changes import Context, Outcome, guard_reason, reject_reason, render
from courier.importer.rows import Row

BATCH = 5000
# Rows read and compared between two turns of the event loop: reading a large file
# must not starve the message keep-alive, health checks or other consumers.
YIELD_EVERY = 1000


async def run(session: AsyncSession, ctx: Context, rows: Iterator[Row]) -> Outcome:
    kind = ctx.spec.kind_def
    table = kind.table
    key = ctx.spec.key
    fields = ctx.layout.fields
    names = [f.name for f in fields]
    compared = [n for n in names if n not in key]
    others = [f.name for f in kind.fields if f.name not in key]
    cols = [table.c.id, table.c.feed_id, *(table.c[f.name] for f in kind.fields)]
    existing: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in await session.execute(select(*cols).where(table.c.tenant_id == ctx.tenant_id)):
        m = r._mapping
        existing[tuple(str(m[k]) for k in key)] = dict(m)

    out = Outcome()
    counts = out.counts
    records: list[dict[str, Any]] = []
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    first_row: dict[tuple[str, ...], int] = {}
    in_file: set[tuple[str, ...]] = set()
    now = datetime.now(UTC)

    def record(number: int, key_text: str | None, action: str, **kw: Any) -> None:
        records.append(
            {
                "import_id": ctx.import_id,
                "row_number": number,
                "seq": kw.get("seq", 0),
                "record_key": key_text,
                "action": action,
                "changes": kw.get("changes"),
                "error": kw.get("error"),
            }
        )

    for seen, row in enumerate(rows, start=1):
        if seen % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        if row.key is not None:
            in_file.add(row.key)
        if row.values is None:
            counts.errored += 1
            record(row.number, row.key_text(), "errored", error=row.error)
            continue
        assert row.key is not None
        if row.key in first_row:
            counts.errored += 1
            record(
                row.number,
                row.key_text(),
                "errored",
                error=f"duplicate key {row.key_text()} (first on row {first_row[row.key]})",
            )
            continue
        first_row[row.key] = row.number
        new = dict(zip(names, row.values, strict=True))
        current = existing.get(row.key)
        if current is None:
            counts.created += 1
            changes = {n: [None, render(new[n])] for n in compared if new[n] is not None}
            record(row.number, row.key_text(), "created", changes=changes)
            creates.append(
                {
                    "id": uuid.uuid4(),
                    "tenant_id": ctx.tenant_id,
                    "feed_id": ctx.feed_id,
                    "updated_at": now,
                    **new,
                }
            )
            continue
        changes = {
            n: [render(current[n]), render(new[n])]
            for n in compared
            if render(current[n]) != render(new[n])
        }
        if changes:
            counts.updated += 1
            record(row.number, row.key_text(), "updated", changes=changes)
            updates.append(
                {"_id": current["id"], "feed_id": ctx.feed_id, "updated_at": now}
                | {n: new[n] for n in compared}
            )
        else:
            counts.unchanged += 1
            record(row.number, row.key_text(), "unchanged")

    if counts.errored and ctx.spec.on_row_error == "reject_file":
        out.rejected = reject_reason(counts.errored)
        await _insert(session, [r for r in records if r["action"] == "errored"])
        return out

    doomed: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    if ctx.spec.mode == "full_sync":
        owned = [(k, v) for k, v in existing.items() if v["feed_id"] == ctx.feed_id]
        doomed = [(k, v) for k, v in owned if k not in in_file]
        out.held = guard_reason(ctx, len(doomed), len(owned))
        for seq, (k, v) in enumerate(sorted(doomed), start=1):
            counts.deleted += 1
            changes = {n: [render(v[n]), None] for n in others if v[n] is not None}
            record(0, "/".join(k), "deleted", changes=changes, seq=seq)

    await _insert(session, records)
    if not ctx.apply or out.held:
        return out
    for i in range(0, len(creates), BATCH):
        await session.execute(insert(table), creates[i : i + BATCH])
    if updates:
        stmt = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(
                feed_id=bindparam("feed_id"),
                updated_at=bindparam("updated_at"),
                **{n: bindparam(n) for n in compared},
            )
        )
        for i in range(0, len(updates), BATCH):
            await (await session.connection()).execute(stmt, updates[i : i + BATCH])
    ids = [v["id"] for _, v in doomed]
    for i in range(0, len(ids), BATCH):
        await session.execute(delete(table).where(table.c.id.in_(ids[i : i + BATCH])))
    return out


async def _insert(session: AsyncSession, records: list[dict[str, Any]]) -> None:
    for i in range(0, len(records), BATCH):
        await session.execute(insert(ImportRecord), records[i : i + BATCH])
