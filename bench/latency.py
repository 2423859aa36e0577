"""Upload-to-audit latency under load, on the stack as deployed (PostgreSQL, NATS, services
as processes), against a baseline measured in the same run: one upload on the idle stack.

    .venv/bin/python -m bench.latency [--partners 50] [--seconds 60] [--rate 10|max]
                                      [--importers 1|2] [--flood [--files 400]] [--quick]

Partners (one tenant, one leave-balance feed and one SFTP account each, half of them on
OpenSSH's `sftp`, half on asyncssh; see `bench/stack.py`) upload 1,000-row files for
`--seconds`: at `--rate` files/s in all (each partner in turn, one upload at a time), or
with `max` each as fast as its uploads go. Printed: files/s uploaded and imported, the
time from the end of each upload (the server acknowledged its close) to its import's
`finished_at` (set in the import's transaction, just before it commits) as p50/p99/max,
errors (failed upload attempts, files lost or imported twice, failed imports), per feed
whether the imports committed in upload order, and the peak RSS of each service.

`--flood` measures one feed's drain rate instead: one partner uploads `--files` small
files over one SFTP session while no importer runs, then an importer starts (the
`--importers` of them) and the rate is the files over the time from the first import's
commit to the last. Also printed: the mean time inside the import's transaction
(`finished_at - started_at`) and the rest of each file's share of the wall time (event
fetch, ordering, lock, commit, result file, ack).

Uses COURIER_TEST_DATABASE_URL (a PostgreSQL server; a fresh database per run) and
COURIER_TEST_NATS_URL (else an embedded nats-server). Run from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import psutil
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import (
    Partner,
    Stack,
    Upload,
    Uploads,
    leave_file,
    reconcile,
    running_stack,
)
from courier.common.db.models import Import, Tenant
from tests.support.fixtures_data import LEAVE_HEADER

ROWS = 1_000
TARGETS = {"p50": 0.5, "p99": 2.0}


def thousand_rows(seq: int) -> bytes:
    """A 1,000-row leave-balance file unique to `seq` (`bench.stack.leave_file` sizes by bytes)."""
    return leave_file(len(LEAVE_HEADER) + 31 * ROWS, seq)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.asynccontextmanager
async def sampling(stack: Stack, every: float = 0.5) -> AsyncIterator[None]:
    """Sample every process's RSS while the block runs (the peaks are kept)."""

    async def loop() -> None:
        while True:
            await asyncio.to_thread(stack.sample_rss)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def baseline(stack: Stack, uploads: Uploads, partner: Partner) -> Upload:
    """One upload on the idle stack, imported."""
    upload = await uploads.send(partner, "leave_000000.csv", thousand_rows(0))
    report = await reconcile(stack.db, [upload], settle=60)
    if not report.latencies:
        tried = [f"{a.error}: {a.detail}" for a in upload.attempts]
        raise RuntimeError(
            "the baseline upload was not imported:\n" + "\n".join(report.lines() + tried)
        )
    return upload


def latencies(sent: list[Upload], done: list[Commit]) -> list[float]:
    """Seconds from each upload's end to its import's commit."""
    finished = {(c.tenant, c.name): c.finished for c in done if c.status != "duplicate"}
    return sorted(
        finished[(u.tenant, u.name)] - u.ended_at
        for u in sent
        if u.ended_at is not None and (u.tenant, u.name) in finished
    )


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def drive(
    uploads: Uploads, partners: list[Partner], seconds: float, rate: float | None
) -> list[Upload]:
    """Each partner uploads one file at a time; at `rate` files/s in all (partners in
    turn), or back to back when `rate` is None. Names carry the partner's sequence, so
    upload order is name order."""
    start = time.monotonic() + 1.0
    sent: list[Upload] = []

    async def partner_loop(index: int, partner: Partner) -> None:
        j = 0
        while True:
            if rate is not None:
                due = start + (index + j * len(partners)) / rate
                if due - start >= seconds:
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            elif time.monotonic() - start >= seconds:
                return
            seq = index * 1_000_000 + j + 1
            sent.append(await uploads.send(partner, f"leave_{j + 1:06d}.csv", thousand_rows(seq)))
            j += 1

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    await asyncio.gather(*(partner_loop(i, p) for i, p in enumerate(partners)))
    return sent


@dataclass
class Commit:
    tenant: str
    name: str
    started: float
    finished: float
    status: str


async def commits(stack: Stack) -> list[Commit]:
    """Every import of an uploaded file, in the order their transactions finished."""
    async with stack.db.session() as session:
        rows = await session.execute(
            select(Tenant.slug, Import.file_name, Import.started_at, Import.finished_at,
                   Import.status)
            .join(Tenant, Tenant.id == Import.tenant_id)
            .where(Import.finished_at.is_not(None))
            .order_by(Import.finished_at)
        )  # fmt: skip
        return [
            Commit(slug, name, started.timestamp(), finished.timestamp(), status)
            for slug, name, started, finished, status in rows
        ]


def out_of_order(done: list[Commit]) -> list[str]:
    """Feeds whose imports did not commit in upload (name) order."""
    by_feed: dict[str, list[str]] = {}
    for c in done:
        by_feed.setdefault(c.tenant, []).append(c.name)
    return [tenant for tenant, names in by_feed.items() if names != sorted(names)]


def cpu_seconds(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


async def postgres_cpu(stack: Stack) -> dict[int, float]:
    """CPU seconds used so far by each server process of the stack's database."""
    async with stack.db.session() as session:
        pids = await session.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        )
        return {pid: cpu_seconds([pid]) for pid in pids}


def rss_line(stack: Stack) -> str:
    peaks = stack.deployment.peak_rss_mb()
    return "peak RSS: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in sorted(peaks.items()))


async def flood_feed(stack: Stack, partner: Partner, files: int) -> list[Upload]:
    """`files` small files of one feed over one asyncssh session, one after another."""
    sent: list[Upload] = []
    async with (
        asyncssh.connect(
            "127.0.0.1",
            stack.gateway_ports[0],
            username=partner.username,
            password=partner.password,
            client_keys=[str(partner.key_path)],
            known_hosts=None,
            agent_path=None,
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        for j in range(files):
            name = f"leave_{j + 1:06d}.csv"
            body = thousand_rows(j + 1)
            async with sftp.open(f"/inbound/{name}", "wb") as fh:
                await fh.write(body)
            upload = Upload(partner.slug, name, len(body), "asyncssh")
            upload.ended_at = time.time()
            sent.append(upload)
    return sent


async def flood(args: argparse.Namespace, work: Path) -> bool:
    async with running_stack(work, gateways=1, importers=0, partners=1) as stack:
        print(f"flood: one feed, {args.files} files of {ROWS:,} rows; {load()}")
        started = time.monotonic()
        sent = await flood_feed(stack, stack.partners[0], args.files)
        took = time.monotonic() - started
        print(f"uploaded {len(sent)} files in {took:.1f} s ({len(sent) / took:.1f} files/s)")
        postgres_before = await postgres_cpu(stack)
        async with sampling(stack):
            for _ in range(args.importers):
                await stack.add("importer")
            ready = cpu_seconds(s.pid for s in stack.importers)
            report = await reconcile(stack.db, sent, settle=max(120.0, args.files / 2))
        importer_cpu = cpu_seconds(s.pid for s in stack.importers) - ready
        postgres_used = {
            pid: used - postgres_before.get(pid, 0.0)
            for pid, used in (await postgres_cpu(stack)).items()
        }
        done = [c for c in await commits(stack) if c.status != "duplicate"]
        print("\n".join(report.lines()))
        ok = report.ok and report.imported == len(sent)
        if len(done) > 1:
            span = done[-1].finished - done[0].finished
            rate = (len(done) - 1) / span
            inside = statistics.mean(c.finished - c.started for c in done)
            print(f"drain: {rate:.1f} files/s ({1000 / rate:.1f} ms a file; target >= 40 files/s)")
            print(
                f"  inside the import (finished_at - started_at): {1000 * inside:.1f} ms; "
                f"the rest of each file's share: {1000 / rate - 1000 * inside:.1f} ms"
            )
        print(
            f"CPU a file: importer process {1000 * importer_cpu / len(sent):.1f} ms, "
            f"PostgreSQL {1000 * sum(postgres_used.values()) / len(sent):.1f} ms "
            "(every backend of the database, the gateway's and this bench's too)"
        )
        order = out_of_order(done)
        print(f"order: {'every feed in upload order' if not order else f'out of order: {order}'}")
        print(rss_line(stack))
        print(load())
        return ok and not order


async def latency(args: argparse.Namespace, work: Path) -> bool:
    rate = None if args.rate == "max" else float(args.rate)
    async with running_stack(
        work, gateways=1, importers=args.importers, partners=args.partners + 1
    ) as stack:
        uploads = Uploads(stack, work / "outgoing")
        base_partner, partners = stack.partners[0], stack.partners[1:]
        print(f"{load()} (stack up)")
        base_upload = await baseline(stack, uploads, base_partner)
        [base] = latencies([base_upload], await commits(stack))
        print(f"baseline: one upload on the idle stack, upload end -> import: {base:.2f} s")
        print(
            f"run: {len(partners)} partners, {args.seconds:g} s, rate "
            f"{'max' if rate is None else f'{rate:g} files/s'}, "
            f"{args.importers} importer(s); {load()}"
        )
        async with sampling(stack):
            started = time.monotonic()
            sent = await drive(uploads, partners, args.seconds, rate)
            sending = time.monotonic() - started
            report = await reconcile(stack.db, [base_upload, *sent], settle=180)
        done = [c for c in await commits(stack) if c.tenant != base_partner.slug]
        waits = latencies(sent, done)
        failed = sum(1 for c in done if c.status not in ("completed", "completed_with_errors"))
        upload_errors = uploads.errors()
        print(f"uploaded: {len(sent)} files, {len(sent) / sending:.1f} files/s offered")
        if len(done) > 1:
            span = done[-1].finished - done[0].finished
            print(f"imported: {len(done)} files, {(len(done) - 1) / span:.1f} files/s")
        print("\n".join(report.lines()))
        errors = sum(upload_errors.values()) + len(report.lost) + len(report.doubled) + failed
        print(
            f"errors: {errors} (upload attempts {dict(upload_errors) or 0}, lost "
            f"{len(report.lost)}, imported twice {len(report.doubled)}, imports not "
            f"completed {failed})"
        )
        order = out_of_order(done)
        print(f"order: {'every feed in upload order' if not order else f'out of order: {order}'}")
        print(rss_line(stack))
        met = {"errors": errors == 0}
        if waits:
            p50, p99 = statistics.median(waits), percentile(waits, 0.99)
            print(
                f"run, upload end -> import committed: p50 {p50:.2f} s, p99 {p99:.2f} s, "
                f"max {waits[-1]:.2f} s; ratio to the baseline: p50 {p50 / base:.2f}x, "
                f"p99 {p99 / base:.2f}x"
            )
            met |= {"p50 < 0.5 s": p50 < TARGETS["p50"], "p99 < 2 s": p99 < TARGETS["p99"]}
        print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
        print(load())
        return all(met.values()) and not order


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", default="10", help="files/s in all, or max")
    parser.add_argument("--importers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--flood", action="store_true", help="one feed's drain rate")
    parser.add_argument("--files", type=int, default=400, help="files of the flood")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.partners, args.seconds, args.files = min(args.partners, 4), 8.0, 40
        if args.rate != "max":
            args.rate = "2"
    with tempfile.TemporaryDirectory(prefix="courier-latency-") as tmp:
        run = flood if args.flood else latency
        ok = asyncio.run(run(args, Path(tmp)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
