"""Export throughput: timesheet lines through the exporter vs a bare COPY, per spec family.

Each family (default columns, custom date formats, custom number formats, month and
day names, a single column, formats only Python renders) is built by the exporter into
a CSV file in `file://` storage and timed against a bare `COPY (SELECT …) TO` file of
the same rows and columns (cells as PostgreSQL renders them by default), in
interleaved rounds of the same run; the best of each is compared.

    COURIER_BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/export_throughput.py [--rows 1000000] [--rounds 3] \
        [--family names --family numbers] [--python]

`--python` also times each family's Python writer (`use_copy=False`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from courier.cli import demo, provision
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade_sync
from courier.common.db.models_exports import Timesheet
from courier.common.storage import file_url, open_storage
from courier.exporter.build import build_file, copy_eligible, export_query
from courier.exporter.spec import ExportSpecModel

FIRST = date(2026, 10, 1)
DAYS = 31
TARGET = 1.5

FAMILIES: dict[str, list[dict[str, str]] | None] = {
    "default": None,
    "dates": [
        {"field": "employee_id"},
        {"field": "employee_name"},
        {"field": "work_date", "format": "%d/%m/%Y"},
        {"field": "start", "format": "%Y-%m-%dT%H:%M:%S"},
        {"field": "end", "format": "%I:%M %p"},
        {"field": "hours"},
        {"field": "cost_centre"},
    ],
    "numbers": [
        {"field": "employee_id"},
        {"field": "employee_name"},
        {"field": "work_date"},
        {"field": "break_minutes", "format": "08.2f"},
        {"field": "hours", "format": ",.2f"},
        {"field": "cost_centre"},
    ],
    "names": [
        {"field": "employee_id"},
        {"field": "employee_name"},
        {"field": "work_date", "format": "%a %d %b %Y"},
        {"field": "start", "format": "%A %-d %B %Y %H:%M"},
        {"field": "hours"},
        {"field": "cost_centre"},
    ],
    "single column": [{"field": "employee_name"}],
    # No SQL equivalent (time zone names): the Python writer's family.
    "zone names": [
        {"field": "employee_id"},
        {"field": "employee_name"},
        {"field": "work_date", "format": "%d %b %Y"},
        {"field": "start", "format": "%Y-%m-%d %H:%M %Z"},
        {"field": "end", "format": "%H:%M %Z"},
        {"field": "hours", "format": ".4g"},
        {"field": "cost_centre"},
    ],
}


def _pg(url: str) -> dict[str, object]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "password": u.password,
        "database": u.database,
    }


def _spec(columns: list[dict[str, str]] | None, *, formats: bool = True) -> ExportSpecModel:
    if columns is not None and not formats:
        columns = [{"field": c["field"]} for c in columns]
    return ExportSpecModel.model_validate(
        {
            "name": "bench",
            "kind": "timesheets",
            "schedule": {"cron": "0 6 * * *", "timezone": "Europe/London"},
            "period": {"kind": "pay_period", "anchor": str(FIRST), "length_days": DAYS},
            "approval": ["approved", "pending", "rejected"],
            "columns": columns,
            "file_name": "bench.csv",
            "destinations": [{"type": "pickup"}],
        }
    )


async def main(rows: int, rounds: int, families: list[str], python: bool) -> None:
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
        print(f"load average before: {os.getloadavg()}")

        end = date.fromordinal(FIRST.toordinal() + DAYS - 1)
        baseline_sql: dict[str, str] = {}
        for family in families:
            bare = export_query(_spec(FAMILIES[family], formats=False), tenant.id, FIRST, end,
                                "postgresql")  # fmt: skip
            baseline_sql[family] = str(
                bare.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )

        async def copy(family: str, path: Path) -> Any:
            await conn.copy_from_query(
                baseline_sql[family], output=str(path), format="csv", header=True
            )

        with tempfile.TemporaryDirectory() as tmp:
            storage = open_storage(file_url(Path(tmp) / "storage"))
            copy_path = Path(tmp) / "copy.csv"
            kinds = ["copy", "export"] + (["python"] if python else [])
            timings = {(f, k): [] for f in families for k in kinds}  # type: dict[tuple[str, str], list[float]]
            sizes: dict[str, tuple[int, int]] = {}
            for _ in range(rounds):
                for family in families:
                    spec = _spec(FAMILIES[family])
                    t0 = time.perf_counter()
                    await copy(family, copy_path)
                    timings[family, "copy"].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    built = await build_file(db, storage, spec, tenant.id, FIRST, end, "b.csv")
                    timings[family, "export"].append(time.perf_counter() - t0)
                    sizes[family] = (copy_path.stat().st_size, built.size)
                    if python:
                        t0 = time.perf_counter()
                        await build_file(
                            db, storage, spec, tenant.id, FIRST, end, "p.csv", use_copy=False
                        )
                        timings[family, "python"].append(time.perf_counter() - t0)
            print(f"load average after:  {os.getloadavg()}")
            print(f"{seeded:,} rows, best of {rounds} interleaved rounds")
            print("ratio: best export / best COPY; median: of each round's export / COPY")
            print(f"{'family':<14} {'path':<7} {'COPY s':>7} {'export s':>9} {'ratio':>6} "
                  f"{'median':>7}  {'python s':>8} {'ratio':>6}")  # fmt: skip
            for family in families:
                copy_s = min(timings[family, "copy"])
                export_s = min(timings[family, "export"])
                paired = statistics.median(
                    e / c for e, c in zip(timings[family, "export"], timings[family, "copy"],
                                          strict=True)
                )  # fmt: skip
                path = "copy" if copy_eligible(_spec(FAMILIES[family]), "postgresql") else "python"
                line = (
                    f"{family:<14} {path:<7} {copy_s:7.2f} {export_s:9.2f} "
                    f"{export_s / copy_s:5.2f}x {paired:6.2f}x"
                )
                if python:
                    python_s = min(timings[family, "python"])
                    line += f"  {python_s:8.2f} {python_s / copy_s:5.2f}x"
                verdict = "ok" if export_s / copy_s <= TARGET else f"over {TARGET}x"
                print(f"{line}  {verdict}  (MB copy/export {sizes[family][0] / 1e6:.1f}/"
                      f"{sizes[family][1] / 1e6:.1f})")  # fmt: skip
        await conn.close()
        await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--family", action="append", choices=list(FAMILIES))
    parser.add_argument("--python", action="store_true", help="time the Python writer too")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.rounds, args.family or list(FAMILIES), args.python))
