"""Import throughput on PostgreSQL: a 1,000,000-row leave-balance file with full audit.

Baselines, in the same run: a bare COPY of the same file into an unindexed table; the
floor any keyed import has (that COPY plus inserting the parsed rows into a table of the
leave balances' shape, indexes included); and pgloader loading the same file into a table
of that shape with random uuid ids, no audit (installed through tests/system-packages.sh
when missing, else skipped). Prints the times, the ratios (the target figure is the
import over the floor) and the process's peak RSS. Run:

    .venv/bin/python bench/import_throughput.py [--rows N] [--server URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from courier.cli import provision
from courier.common.areas import area_key
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade
from courier.common.received import event_for, record_file
from courier.common.storage import file_url, open_storage
from courier.common.uow import UnitOfWork
from courier.importer.apply import handle
from courier.importer.spec import FeedSpec

DB_NAME = "courier_bench_import"
LEAVE_TYPES = ("annual", "sick", "toil", "parental")


def generate(path: Path, rows: int, seed: int, changed_share: float = 0.0) -> None:
    """Employees x leave types; `changed_share` of balances differ from seed 0's."""
    base, rnd = random.Random(0), random.Random(seed)
    with path.open("w", newline="") as fh:
        fh.write("employee_id,leave_type,balance_hours,as_of\n")
        for i in range(rows):
            hours = base.randrange(0, 40000) / 100
            if changed_share and rnd.random() < changed_share:
                hours += 1
            fh.write(f"E{i // 4:07d},{LEAVE_TYPES[i % 4]},{hours:.2f},2026-11-01\n")


async def connect(server: str, database: str) -> asyncpg.Connection:
    url = make_url(server)
    return await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database=database,
    )  # fmt: skip


async def admin(server: str, sql: str, database: str = "postgres") -> None:
    conn = await connect(server, database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def bare_copy(server: str, path: Path, tenant_id: object) -> tuple[float, float]:
    """The baseline, and the floor: the same rows written to a table of leave balances' shape.

    The floor inserts the already parsed rows into a copy of `leave_balances` with its
    indexes (primary key, unique tenant + employee + leave type): no checks, no audit,
    no comparison, ascending ids as the importer makes them. No import that keeps
    those keys can be faster than COPY + floor.
    """
    conn = await connect(server, DB_NAME)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bare_copy; CREATE TABLE bare_copy (employee_id text, "
            "leave_type text, balance_hours numeric(12,2), as_of date)"
        )
        started = time.perf_counter()
        await conn.copy_to_table("bare_copy", source=path, format="csv", header=True)
        elapsed = time.perf_counter() - started
        await conn.execute(
            "DROP TABLE IF EXISTS floor_balances; "
            "CREATE TABLE floor_balances (LIKE leave_balances INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO floor_balances (id, tenant_id, employee_id, leave_type, balance_hours, "
            "as_of, updated_at) SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))"
            "::uuid, $1, employee_id, leave_type, balance_hours, as_of, now() "
            "FROM (SELECT *, row_number() OVER () AS n FROM bare_copy) b",
            tenant_id,
        )
        floor = time.perf_counter() - started
        await conn.execute("DROP TABLE bare_copy; DROP TABLE floor_balances")
        return elapsed, floor
    finally:
        await conn.close()


def have_pgloader() -> bool:
    """pgloader on the PATH, installed from the distribution if missing and possible."""
    if shutil.which("pgloader") is None:
        script = Path(__file__).resolve().parent.parent / "tests" / "system-packages.sh"
        subprocess.run(["sh", str(script), "pgloader"], check=False)
    return shutil.which("pgloader") is not None


async def pgloader(server: str, path: Path, tenant_id: object, work: Path) -> float:
    """Seconds pgloader takes to load `path` into a keyed table of the balances' shape.

    Random uuid ids (`gen_random_uuid()` default), both indexes, no audit, no comparison:
    what a general-purpose loader does with the same file and the same keys. Debian's
    pgloader 3.6.7 sometimes crashes at start ("Unsafe concurrent operations on
    #<HASH-TABLE …>", before loading a row): such a run is tried again, up to three times.
    """
    with path.open() as fh:
        expected = sum(1 for _ in fh) - 1
    for attempt in range(1, 4):
        elapsed, loaded, said = await _pgloader_once(server, path, tenant_id, work)
        if loaded == expected:
            return elapsed
        crashed = loaded == 0 and "Unsafe concurrent operations" in said
        if not crashed or attempt == 3:
            raise RuntimeError(f"pgloader loaded {loaded} rows: {said}")
        print(f"pgloader crashed before loading a row (its known start-up race); try {attempt + 1}")
    raise AssertionError("unreachable")


async def _pgloader_once(
    server: str, path: Path, tenant_id: object, work: Path
) -> tuple[float, int, str]:
    conn = await connect(server, DB_NAME)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS pgloader_balances; CREATE TABLE pgloader_balances "
            "(LIKE leave_balances INCLUDING DEFAULTS INCLUDING INDEXES); "
            "ALTER TABLE pgloader_balances ALTER id SET DEFAULT gen_random_uuid(), "
            f"ALTER tenant_id SET DEFAULT '{tenant_id}', ALTER updated_at SET DEFAULT now()"
        )
    finally:
        await conn.close()
    target = make_url(server).set(drivername="postgresql", database=DB_NAME)
    columns = "employee_id, leave_type, balance_hours, as_of"
    command = work / "load.pgl"
    command.write_text(
        f"LOAD CSV FROM '{path}' ({columns})\n"
        f"INTO {target.render_as_string(hide_password=False)}?pgloader_balances ({columns})\n"
        "WITH skip header = 1, fields terminated by ',';\n"
    )
    started = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run, ["pgloader", "--quiet", str(command)], capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    conn = await connect(server, DB_NAME)
    try:
        loaded = await conn.fetchval("SELECT count(*) FROM pgloader_balances")
        await conn.execute("DROP TABLE pgloader_balances")
    finally:
        await conn.close()
    # A failed run counts as having loaded nothing, whatever reached the table.
    return elapsed, loaded if done.returncode == 0 else 0, done.stdout + done.stderr


async def run(rows: int, server: str) -> None:
    with_pgloader = have_pgloader()
    if not with_pgloader:
        print("pgloader is not installed and could not be: its comparison is skipped")
    await admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    await admin(server, f'CREATE DATABASE "{DB_NAME}"')
    url = make_url(server).set(drivername="postgresql+asyncpg", database=DB_NAME)
    url_text = url.render_as_string(hide_password=False)
    await upgrade(url_text)
    db = Database(url_text)
    with tempfile.TemporaryDirectory(prefix="courier-bench-") as tmp:
        storage = open_storage(file_url(Path(tmp) / "storage"))
        tenant = await provision.ensure_tenant(db, "bench", "Bench")
        spec = FeedSpec(name="leave", kind="leave_balances", pattern="leave_*.csv")
        await provision.upsert_feed(
            db, tenant, "leave", "leave_balances", "leave_*.csv", spec.model_dump(mode="json")
        )
        results = []
        for label, seed, share in (("first import (all created)", 1, 0.0),
                                   ("re-import (10% updated)", 2, 0.1)):  # fmt: skip
            src = Path(tmp) / f"leave_{seed}.csv"
            generate(src, rows, seed, share)
            copy_seconds, floor_seconds = await bare_copy(server, src, tenant.id)
            loader_seconds = (
                await pgloader(server, src, tenant.id, Path(tmp)) if with_pgloader else None
            )
            key = area_key(tenant.slug, "inbound", src.name)
            dest = storage.path(key)  # type: ignore[attr-defined]
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dest)
            row = await record_file(db, storage, tenant, src.name, key, source="api")
            started = time.perf_counter()
            [imp] = await handle(event_for(row, tenant), UnitOfWork(db, storage))
            import_seconds = time.perf_counter() - started
            results.append(
                (label, imp.status, copy_seconds, floor_seconds, loader_seconds, import_seconds)
            )
        await db.dispose()
    await admin(server, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows: {rows:,}")
    for label, status, copy_s, floor_s, loader_s, import_s in results:
        floor = copy_s + floor_s
        print(
            f"{label}: status {status}; bare COPY {copy_s:.2f} s; "
            f"import with audit {import_s:.2f} s; ratio {import_s / copy_s:.2f}x"
        )
        print(
            f"  floor (COPY + insert into the balances' indexed shape, no checks, no audit): "
            f"{floor:.2f} s; ratio {floor / copy_s:.2f}x"
        )
        print(f"  import / floor: {import_s / floor:.2f}x")
        if loader_s is not None:
            print(
                f"  pgloader (same file, keyed table, random uuid ids, no audit): "
                f"{loader_s:.2f} s; "
                f"import / pgloader {import_s / loader_s:.2f}x "
                f"(pgloader / import {loader_s / import_s:.2f}x)"
            )
    print(f"peak RSS: {peak_mb:.0f} MB")


def main_on_server(
    run: Callable[..., Awaitable[None]], doc: str, parser: argparse.ArgumentParser | None = None
) -> None:
    """`--rows N --server URL`, then `run(rows, server)`: the PostgreSQL benches' command line.

    A bench with options of its own passes a `parser` holding them; they reach `run`
    as keyword arguments.
    """
    parser = parser or argparse.ArgumentParser()
    parser.description = doc.splitlines()[0]
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/test")
    args = vars(parser.parse_args())
    asyncio.run(run(args.pop("rows"), args.pop("server"), **args))


def main() -> None:
    main_on_server(run, __doc__ or "")


if __name__ == "__main__":
    main()
