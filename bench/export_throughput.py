"""Export throughput: 1,000,000 timesheet lines through the exporter vs a bare COPY.

Both read the same rows with the same SELECT from PostgreSQL and write a CSV file to
local disk; the ratio says what streaming, formatting and formula defusing cost.

    COURIER_BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/export_throughput.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import asyncpg
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from courier.cli import demo, provision
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade_sync
from courier.common.db.models_exports import Timesheet
from courier.common.storage import file_url, open_storage
from courier.exporter.build import build_file, export_query
from courier.exporter.spec import ExportSpecModel

FIRST = date(2026, 10, 1)
DAYS = 31


def _pg(url: str) -> dict[str, object]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "password": u.password,
        "database": u.database,
    }


async def main(rows: int) -> None:
    server = os.environ.get(
        "COURIER_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"courier_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(**_pg(server))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade_sync, url)
        db = Database(url)
        tenant = await provision.ensure_tenant(db, "bench", "Bench", "Europe/London")
        employees = rows * 7 // (5 * DAYS) + 500
        source = itertools.islice(
            demo.timesheet_rows(tenant.id, FIRST, DAYS, employees, tenant.timezone), rows
        )
        started = time.perf_counter()
        seeded = await demo._insert(db, Timesheet, source)
        conn = await asyncpg.connect(**_pg(url))
        await conn.execute("VACUUM ANALYZE timesheets")
        print(f"seeded {seeded:,} timesheet lines in {time.perf_counter() - started:.1f} s")

        spec = ExportSpecModel.model_validate(
            {
                "name": "bench",
                "kind": "timesheets",
                "schedule": {"cron": "0 6 * * *", "timezone": "Europe/London"},
                "period": {"kind": "pay_period", "anchor": str(FIRST), "length_days": DAYS},
                "approval": ["approved", "pending", "rejected"],
                "file_name": "bench.csv",
                "destinations": [{"type": "pickup"}],
            }
        )
        end = date.fromordinal(FIRST.toordinal() + DAYS - 1)
        stmt = export_query(spec, tenant.id, FIRST, end, "postgresql")
        sql = str(
            stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )

        with tempfile.TemporaryDirectory() as tmp:
            storage = open_storage(file_url(Path(tmp) / "storage"))
            copy_path = Path(tmp) / "copy.csv"
            timings: dict[str, list[float]] = {"copy": [], "export": [], "python": []}
            for _ in range(3):
                t0 = time.perf_counter()
                await conn.copy_from_query(sql, output=str(copy_path), format="csv", header=True)
                timings["copy"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                built = await build_file(db, storage, spec, tenant.id, FIRST, end, "bench.csv")
                timings["export"].append(time.perf_counter() - t0)
                # The path a spec with custom formats takes (cells formatted in Python).
                t0 = time.perf_counter()
                await build_file(
                    db, storage, spec, tenant.id, FIRST, end, "python.csv", use_copy=False
                )
                timings["python"].append(time.perf_counter() - t0)
            copy_s, export_s = min(timings["copy"]), min(timings["export"])
            python_s = min(timings["python"])
            print(
                f"COPY (SELECT …) TO file: {copy_s:.2f} s "
                f"({seeded / copy_s:,.0f} rows/s, {copy_path.stat().st_size / 1e6:.1f} MB)"
            )
            print(
                f"exporter build:          {export_s:.2f} s "
                f"({built.rows / export_s:,.0f} rows/s, {built.size / 1e6:.1f} MB, "
                f"{built.rows:,} rows)"
            )
            print(f"ratio exporter / COPY:   {export_s / copy_s:.2f}x (target <= 2x)")
            print(
                f"python writer (specs with custom formats): {python_s:.2f} s, "
                f"ratio {python_s / copy_s:.2f}x"
            )
        await conn.close()
        await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().rows))
