"""The partner's answer: `/outbound/results/<file>.result.csv` for every processed inbound file.

One CSV a spreadsheet opens: the first row says what became of the file (status,
counts or the exact reason), then one row per errored record. Cells are
neutralised against formula injection, since the partner opens it in a
spreadsheet and the values came from outside.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.areas import area_key
from courier.common.csvsafe import defuse
from courier.common.db.models import Import, ImportRecord
from courier.common.storage import Storage

MAX_ROWS = 100_000


def result_key(tenant: str, file_name: str) -> str:
    return area_key(tenant, "outbound", f"results/{file_name}.result.csv")


def summary(imp: Import) -> str:
    counts = (
        f"created {imp.created}, updated {imp.updated}, unchanged {imp.unchanged}, "
        f"deleted {imp.deleted}, errored {imp.errored}"
    )
    if imp.status in ("rejected", "failed"):
        return imp.error or imp.status
    if imp.status == "duplicate":
        return f"same content as {imp.details.get('duplicate_of_file')}; not applied again"
    if imp.status == "awaiting_approval":
        return f"held for approval ({imp.details.get('held')}); would be: {counts}"
    if imp.status == "discarded":
        return "held change set rejected; nothing applied"
    return counts


async def write_result(session: AsyncSession, storage: Storage, imp: Import, tenant: str) -> str:
    """Write the result file from the import's transaction; returns its key.

    Written before the import commits, so a committed import always has its result
    file. If the commit then fails, the redelivered event writes it again.
    """
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(["status", "row", "key", "message"])
    out.writerow([imp.status, "", "", defuse(summary(imp))])
    rows = await session.stream(
        select(ImportRecord.row_number, ImportRecord.record_key, ImportRecord.error)
        .where(ImportRecord.import_id == imp.id, ImportRecord.action == "errored")
        .order_by(ImportRecord.row_number)
        .limit(MAX_ROWS)
    )
    async for number, key, error in rows:
        out.writerow(["errored", number, defuse(key), defuse(error)])
    key = result_key(tenant, imp.file_name)
    await storage.put(key, buf.getvalue().encode("utf-8"))
    return key
