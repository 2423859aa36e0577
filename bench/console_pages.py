"""Console import page on PostgreSQL: any page of any action of a 1,000,000-row import.

Writes one import with N audited rows straight into a fresh database (one INSERT …
SELECT: a mix of created, updated, unchanged and errored rows, plus N/100 records a
full sync deleted, all on row 0), then opens the first, middle and last page of each
action filter (and of no filter) through the app in process (httpx ASGI, signed in
as a support user: session, keyset queries, pending decisions, template), and the
"jump to row" box at the middle row.

Pages of `--page-size` records (default 100): the console's HTML page shows a fixed
50 (`pages_imports.RECORDS_PAGE`), so that size opens the HTML page and any other size
the console's JSON API (`/api/imports/{id}?limit=N`, the same keyset queries).

Baselines, in the same run: the bare `SELECT … LIMIT n` of the same rows (same
WHERE, same order, same cursor) over asyncpg; and the app's own floor, the first page
of a 100-row import (sign-in check, template, the same queries on a tiny range).
Prints the median of several opens of each, and the ratios. Run:

    .venv/bin/python -m bench.console_pages [--rows N] [--server URL] [--page-size N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bench.import_throughput import admin, connect, main_on_server
from courier.cli import provision
from courier.common import console_users
from courier.common.db.base import utcnow
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade
from courier.common.db.models import Feed, Import, ReceivedFile
from courier.common.settings import Settings
from courier.common.storage import file_url, open_storage
from courier.console.api import create_app
from courier.console.pages_imports import RECORDS_PAGE

DB_NAME = "courier_bench_console"
REPEAT = 7
PASSWORD = "bench password, long enough"
ACTIONS = ("created", "updated", "deleted", "unchanged", "errored")
# Row n of the file (2..N+1): errored every 50th, else 30% updated, 40% unchanged, rest created.
ACTION_OF_ROW = """CASE WHEN n % 50 = 0 THEN 'errored'
                       WHEN n % 10 IN (1, 2, 3) THEN 'updated'
                       WHEN n % 10 IN (4, 5, 6, 7) THEN 'unchanged'
                       ELSE 'created' END"""


async def seed(db: Database, conn: asyncpg.Connection, rows: int, feed: Feed) -> uuid.UUID:
    """One import and its audit, written as the importer's bulk path would leave them."""
    name = f"leave_{rows}.csv"
    async with db.transaction() as s:
        received = ReceivedFile(
            tenant_id=feed.tenant_id, name=name, storage_key=f"bench/{name}",
            size=rows * 40, sha256="0" * 64, source="api",
        )  # fmt: skip
        s.add(received)
        await s.flush()
        imp = Import(
            tenant_id=feed.tenant_id, feed_id=feed.id, file_id=received.id,
            file_name=received.name, storage_key=received.storage_key, sha256=received.sha256,
            size=received.size, status="completed_with_errors", details={}, finished_at=utcnow(),
        )  # fmt: skip
        s.add(imp)
    import_id = imp.id
    await conn.execute(
        f"""
        INSERT INTO import_records (import_id, row_number, seq, record_key, action, changes, error)
        SELECT $1, n, 0, 'E' || lpad((n / 4)::text, 7, '0') || '/annual', a,
               CASE a WHEN 'updated' THEN json_build_object('balance_hours',
                          json_build_array((n % 400)::text || '.00', (n % 400 + 1)::text || '.00'))
                      WHEN 'created' THEN json_build_object('balance_hours',
                          json_build_array(NULL, (n % 400)::text || '.00'))
               END,
               CASE a WHEN 'errored' THEN 'balance_hours: ''x' || n || ''' is not a number' END
        FROM (SELECT n, {ACTION_OF_ROW} AS a FROM generate_series(2, $2 + 1) n) r
        """,
        import_id, rows,
    )  # fmt: skip
    await conn.execute(
        """
        INSERT INTO import_records (import_id, row_number, seq, record_key, action, changes)
        SELECT $1, 0, s, 'D' || lpad(s::text, 7, '0') || '/annual', 'deleted',
               json_build_object('balance_hours', json_build_array('1.00', NULL))
        FROM generate_series(1, $2) s
        """,
        import_id, max(rows // 100, RECORDS_PAGE * 3),
    )  # fmt: skip
    # The importer stores these counts with the import; the pages never count rows.
    counts = dict(
        await conn.fetch(
            "SELECT action, count(*) FROM import_records WHERE import_id = $1 GROUP BY action",
            import_id,
        )
    )
    await conn.execute(
        "UPDATE imports SET created = $2, updated = $3, deleted = $4, unchanged = $5, "
        "errored = $6 WHERE id = $1",
        import_id, *(counts.get(a, 0) for a in ACTIONS),
    )  # fmt: skip
    await conn.execute("ANALYZE import_records; ANALYZE imports")
    return import_id


def where(action: str | None, position: str, cursor: tuple[int, int] | None) -> tuple[str, str]:
    """The bare query's WHERE and ORDER BY for one page (the same rows the app shows,
    bounded as the app bounds them: deleted records on row 0, the others after it)."""
    clause = "import_id = $1" + (" AND action = $2" if action else "")
    if action:
        clause += " AND row_number = 0" if action == "deleted" else " AND row_number > 0"
    n = 3 if action else 2
    if position == "middle":
        clause += f" AND (row_number, seq) > (${n}, ${n + 1})"
    elif position == "row":
        clause += f" AND (row_number, seq) >= (${n}, ${n + 1})"
    order = "row_number DESC, seq DESC" if position == "last" else "row_number, seq"
    return clause, order


async def middle_cursor(
    conn: asyncpg.Connection, import_id: uuid.UUID, action: str | None
) -> tuple[int, int]:
    """Where the middle page starts (found once, by OFFSET; not part of what is timed)."""
    clause = "import_id = $1" + (" AND action = $2" if action else "")
    args = [import_id, action] if action else [import_id]
    total = await conn.fetchval(f"SELECT count(*) FROM import_records WHERE {clause}", *args)
    row = await conn.fetchrow(
        f"SELECT row_number, seq FROM import_records WHERE {clause} "
        f"ORDER BY row_number, seq OFFSET {total // 2} LIMIT 1",
        *args,
    )
    return row["row_number"], row["seq"]


async def timed(call, repeat: int = REPEAT) -> float:
    """Median milliseconds of `repeat` calls, after one warm-up."""
    await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def page_url(import_id: uuid.UUID, page_size: int) -> tuple[str, dict[str, str]]:
    """The HTML page at its own size, else the JSON API with `limit`."""
    if page_size == RECORDS_PAGE:
        return f"/imports/{import_id}", {}
    return f"/api/imports/{import_id}", {"limit": str(page_size)}


def records_shown(answer: httpx.Response) -> int:
    if answer.headers["content-type"].startswith("application/json"):
        return len(answer.json()["records"])
    return answer.text.count('<tr class="record ')


async def measure(
    http: httpx.AsyncClient,
    conn: asyncpg.Connection,
    import_id: uuid.UUID,
    rows: int,
    page_size: int,
) -> list[tuple[str, str, float, float, int]]:
    results = []
    for action in (None, *ACTIONS):
        middle = await middle_cursor(conn, import_id, action)
        positions = {"first": None, "middle": middle, "last": None, "row": (rows // 2, 0)}
        for position, cursor in positions.items():
            url, params = page_url(import_id, page_size)
            if action:
                params["action"] = action
            if position == "middle":
                params["after"] = f"{cursor[0]}.{cursor[1]}"
            elif position == "last":
                params["last"] = "true"
            elif position == "row":
                params["row"] = str(cursor[0])
            shown = 0

            async def page(url=url, params=params) -> None:
                nonlocal shown
                answer = await http.get(url, params=params)
                assert answer.status_code == 200, answer.text[:500]
                shown = records_shown(answer)

            clause, order = where(action, position, cursor)
            sql = f"SELECT * FROM import_records WHERE {clause} ORDER BY {order} LIMIT {page_size}"
            args = [import_id, *([action] if action else []), *(cursor or ())]

            async def bare(sql=sql, args=args) -> None:
                await conn.fetch(sql, *args)

            app_ms, bare_ms = await timed(page), await timed(bare)
            results.append((action or "all", position, app_ms, bare_ms, shown))
    return results


async def run(rows: int, server: str, page_size: int) -> None:
    await admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    await admin(server, f'CREATE DATABASE "{DB_NAME}"')
    url = make_url(server).set(drivername="postgresql+asyncpg", database=DB_NAME)
    url_text = url.render_as_string(hide_password=False)
    await upgrade(url_text)
    db = Database(url_text)
    conn = await connect(server, DB_NAME)
    try:
        tenant = await provision.ensure_tenant(db, "bench", "Bench")
        feed = await provision.upsert_feed(db, tenant, "leave", "leave_balances", "leave_*.csv", {})
        async with db.transaction() as s:
            await console_users.create_user(
                s, username="sam", role="support", password=PASSWORD, by="bench"
            )
        started = time.perf_counter()
        import_id = await seed(db, conn, rows, feed)
        small_id = await seed(db, conn, 100, feed)
        print(f"seeded {rows:,} rows (+ deleted records) in {time.perf_counter() - started:.1f} s")
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'import_records' ORDER BY 1"
        )
        print("indexes on import_records:", ", ".join(r["indexname"] for r in indexes))
        with TemporaryDirectory(prefix="courier-bench-") as tmp:
            settings = Settings(database_url=url_text, storage_url=file_url(Path(tmp)))
            app = create_app(db, open_storage(settings.storage_url), settings)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
                signed = await http.post("/signin", data={"username": "sam", "password": PASSWORD})
                assert signed.status_code == 303, signed.text
                results = await measure(http, conn, import_id, rows, page_size)

                async def small() -> None:
                    url, params = page_url(small_id, page_size)
                    assert (await http.get(url, params=params)).status_code == 200

                floor_ms = await timed(small)
    finally:
        await conn.close()
        await db.dispose()
        await admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    surface = "HTML page" if page_size == RECORDS_PAGE else "JSON API"
    print(f"rows: {rows:,}; page: {page_size} records ({surface}); median of {REPEAT} opens")
    print(f"app floor (first page of a 100-row import): {floor_ms:.1f} ms")
    print(
        f"{'action':<10} {'page':<7} {'app ms':>8} {'bare ms':>8} {'vs bare':>8} "
        f"{'vs floor':>8} {'shown':>6}"
    )
    for action, position, app_ms, bare_ms, shown in results:
        print(
            f"{action:<10} {position:<7} {app_ms:8.1f} {bare_ms:8.2f} {app_ms / bare_ms:7.1f}x "
            f"{app_ms / floor_ms:7.2f}x {shown:6d}"
        )
    worst = max(results, key=lambda r: r[2])
    print(
        f"slowest page: {worst[0]} {worst[1]} {worst[2]:.1f} ms ({worst[2] / floor_ms:.2f}x floor)"
    )
    print(f"slowest bare SELECT: {max(r[3] for r in results):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--page-size", type=int, default=100)
    main_on_server(run, __doc__ or "", parser)


if __name__ == "__main__":
    main()
