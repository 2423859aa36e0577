"""The partner's answer: one result file in `/outbound/results/` per processed inbound file.

One CSV a spreadsheet opens: the first row says what became of the file (status,
counts or the exact reason), then one row per errored record. Cells are
neutralised against formula injection, since the partner opens it in a
spreadsheet and the values came from outside.

A result is never replaced by another file's: its name carries when the file arrived
and the file's short id (`leave_1.csv.20261202T101500Z-1a2b3c4d.result.csv`), both
fixed when the file was received, so a second upload of the same name gets a second
result while a redelivered import writes the same one again. A test file's result
goes to `/outbound/results/test/` and its first row says nothing was applied.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from courier.common.areas import area_key
from courier.common.csvsafe import defuse
from courier.common.db.models import Import, ImportRecord
from courier.common.feeds import TEST_FOLDER, split_test
from courier.common.storage import Storage

MAX_ROWS = 100_000


TEST_NOTE = "TEST - nothing applied. "
UNRECOGNISED = "unrecognised file name"


def _stamp(when: datetime) -> str:
    # SQLite hands stored times back without their zone; they are UTC.
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def result_name(imp: Import) -> str:
    """`results/[test/]<name>.<received, UTC>-<file id>.result.csv`, from what never changes."""
    name, _ = split_test(imp.file_name)
    folder = f"results/{TEST_FOLDER}" if imp.test else "results/"
    return f"{folder}{name}.{_stamp(imp.received_at)}-{imp.file_id.hex[:8]}.result.csv"


def result_key(tenant: str, imp: Import) -> str:
    return area_key(tenant, "outbound", result_name(imp))


def _reason(imp: Import) -> str:
    """Why it was refused; a name no feed takes is told the names that are taken."""
    reason = imp.error or imp.status
    if reason == UNRECOGNISED and "expected_patterns" in (imp.details or {}):
        patterns = imp.details["expected_patterns"]
        if not patterns:
            return f"{reason}: this account has no feed that takes files yet"
        return f"{reason}: expected one of {', '.join(patterns)}"
    return reason


def summary(imp: Import) -> str:
    text = _outcome(imp)
    return TEST_NOTE + text if imp.test else text


def _outcome(imp: Import) -> str:
    counts = (
        f"created {imp.created}, updated {imp.updated}, unchanged {imp.unchanged}, "
        f"deleted {imp.deleted}, errored {imp.errored}"
    )
    if imp.status in ("rejected", "failed"):
        return _reason(imp)
    if imp.test:
        held = imp.details.get("would_be_held")
        then = f"; it would be held for approval ({held})" if held else ""
        return f"As a live file it would give: {counts}{then}"
    if imp.status == "duplicate":
        return f"same content as {imp.details.get('duplicate_of_file')}; not applied again"
    if imp.status == "awaiting_approval":
        return f"held for approval ({imp.details.get('held')}); would be: {counts}"
    if imp.status == "scheduled":
        when = imp.details.get("apply_at_local")
        return f"accepted; checked, to be applied at {when}; would be: {counts}"
    if imp.status == "discarded":
        return "held change set rejected; nothing applied"
    if imp.status == "unpacked":
        return _unpacked(imp.details or {})
    return counts


def _unpacked(details: dict) -> str:
    """A zip: which members go on to be imported (each gets its own result file)."""
    taken = [m["name"] for m in details.get("members", [])]
    text = f"unpacked; imported one by one, each with its own result: {', '.join(taken)}"
    skipped = details.get("skipped", [])
    if skipped:
        text += "; not imported: " + ", ".join(f"{m['name']} ({m['reason']})" for m in skipped)
    return text


async def write_result(session: AsyncSession, storage: Storage, imp: Import, tenant: str) -> str:
    """Write the result file from the import's transaction; returns its key.

    Written before the import commits, so a committed import always has its result
    file. If the commit then fails, the redelivered event writes it again.
    """
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(["status", "row", "key", "message"])
    out.writerow([imp.status, "", "", defuse(summary(imp))])
    if imp.errored:
        # Only an import that counts errored rows has any to list (a round trip saved
        # for every clean file).
        rows = await session.stream(
            select(ImportRecord.row_number, ImportRecord.record_key, ImportRecord.error)
            .where(ImportRecord.import_id == imp.id, ImportRecord.action == "errored")
            .order_by(ImportRecord.row_number)
            .limit(MAX_ROWS)
        )
        async for number, key, error in rows:
            out.writerow(["errored", number, defuse(key), defuse(error)])
    # The same file's later outcome (approved, applied at its window) keeps its name.
    key = imp.result_key or result_key(tenant, imp)
    await storage.put(key, buf.getvalue().encode("utf-8"))
    return key
