"""Load with faults: many partners uploading while a gateway and an importer are killed.

    .venv/bin/python bench/load.py [--partners 200] [--seconds 120] [--every 60]
                                   [--gateways 2] [--importers 2] [--no-kills]

The stack of `bench/stack.py` (PostgreSQL, NATS JetStream, `file://` storage, each
replica its own process) with `--partners` partners, half on OpenSSH's `sftp`, half on
asyncssh. Each partner uploads a leave-balance file about every `--every` seconds
(first at a random moment in that interval), its size drawn from 1 KB to 5 MB, for
`--seconds`. At 40 % of the run one gateway replica is killed with SIGKILL and
restarted; at 60 % one importer replica. Each time the victim is a replica at work
(running an import's statement, or busy with SSH sessions), so the kill cuts work in
flight. The other replica of each keeps serving; an upload cut by the kill is retried
on the next gateway.

Prints files/s uploaded and imported, upload end -> import committed p50/p99/max,
errors by kind (those on connections the gateway kill cut, and any others), peak RSS
per service, and the reconciliation of every upload against the database. Exits 1
if a file was lost, imported twice, recorded but never sent, or an error came from
anything but the kill.

`run_load` is the same run as a function (`tests/resilience/test_load_smoke.py`).
Run from the repository root; it reads `COURIER_TEST_DATABASE_URL` and
`COURIER_TEST_NATS_URL` as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import (
    Partner,
    Reconciliation,
    Stack,
    Upload,
    Uploads,
    leave_file,
    reconcile,
    running_stack,
)
from tests.support.deployed import ServiceProcess

# A replica using this much CPU is at work (SSH sessions, parsing).
BUSY_CPU_PERCENT = 30.0
# File sizes a payroll sends (bytes, weight): most small, a few large.
SIZES = ((1_000, 30), (10_000, 30), (100_000, 25), (1_000_000, 12), (5_000_000, 3))


@dataclass(frozen=True)
class LoadOptions:
    partners: int = 200
    seconds: float = 120
    every: float = 60
    gateways: int = 2
    importers: int = 2
    kill_gateway_at: float | None = 0.4  # share of the run; None: no kill
    kill_importer_at: float | None = 0.6
    settle: float = 120
    seed: int = 1
    sizes: tuple[tuple[int, int], ...] = SIZES
    database_url: str | None = None  # a migrated empty database; else one made for the run
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass
class Kill:
    service: str
    port: int | None  # a gateway's SFTP port
    killed: float
    ready: float


@dataclass
class LoadResult:
    options: LoadOptions
    started: float  # epoch seconds
    duration: float
    uploads: list[Upload]
    kills: list[Kill]
    reconciliation: Reconciliation
    peak_rss_mb: dict[str, float]
    errors_of_kill: Counter[str]
    other_errors: Counter[str]
    other_details: list[str]

    @property
    def ok(self) -> bool:
        return self.reconciliation.ok and not self.other_errors

    def lines(self) -> list[str]:
        r, o = self.reconciliation, self.options
        stored = sum(1 for u in self.uploads if u.ok)
        megabytes = sum(u.size for u in self.uploads if u.ok) / 1e6
        out = [
            f"partners: {o.partners} (OpenSSH sftp and asyncssh), one file each about every "
            f"{o.every:g} s, {o.seconds:g} s; gateways {o.gateways}, importers {o.importers}",
            f"uploaded: {stored} files, {megabytes:.1f} MB in {self.duration:.1f} s: "
            f"{stored / self.duration:.2f} files/s",
            f"imported: {r.imported} files; {r.imported / self.duration:.2f} files/s "
            "over the upload period",
        ]
        for kill in self.kills:
            out.append(
                f"killed {kill.service} (SIGKILL) at {kill.killed - self.started:.1f} s, "
                f"replacement ready at {kill.ready - self.started:.1f} s"
            )
        out.append(
            "errors on connections cut by the kill: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.errors_of_kill.items())) or "none")
        )
        out.append(
            "other errors: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.other_errors.items())) or "none")
        )
        out += [f"  {d}" for d in self.other_details[:5]]
        out.append(
            "peak RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(self.peak_rss_mb.items()))
        )
        out += r.lines()
        out.append("verdict: " + ("every file accounted for" if self.ok else "FAILED"))
        return out


def _by_kill(
    uploads: list[Upload], kills: list[Kill]
) -> tuple[Counter[str], Counter[str], list[str]]:
    """Split failed attempts: those on a killed gateway's port while it was down or
    begun before it died, and the rest."""
    of_kill: Counter[str] = Counter()
    other: Counter[str] = Counter()
    details: list[str] = []
    for upload in uploads:
        for attempt in upload.attempts:
            if attempt.error is None:
                continue
            cut = any(
                k.port == attempt.port and attempt.started <= k.ready and attempt.ended >= k.killed
                for k in kills
            )
            if cut:
                of_kill[attempt.error] += 1
            else:
                other[attempt.error] += 1
                details.append(f"{upload.tenant}/{upload.name}: {attempt.error}: {attempt.detail}")
    for upload in uploads:
        if not upload.ok:
            other["gave up"] += 1
    return of_kill, other, details


async def keep_uploading(
    uploads: Uploads,
    partner: Partner,
    every: float,
    sizes: tuple[tuple[int, int], ...],
    end: float,
    rnd: random.Random,
) -> None:
    """A partner's schedule: a file about every `every` s (the first at a random moment
    in that interval) until `end` (monotonic), sizes drawn from `sizes`."""
    at = time.monotonic() + rnd.uniform(0, every)
    seq = 0
    while at < end:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        seq += 1
        size = rnd.choices([s for s, _ in sizes], [w for _, w in sizes])[0]
        await uploads.send(partner, f"leave_{seq:05d}.csv", leave_file(size, seq))
        at += every * rnd.uniform(0.8, 1.2)


async def _sample(stack: Stack, stop: asyncio.Event) -> None:
    while not stop.is_set():
        stack.sample_rss()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _active_ports(stack: Stack) -> set[int]:
    """Client ports of the database connections running a statement now."""
    async with stack.db.session() as session:
        rows = await session.execute(
            text(
                "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            )
        )
        return {port for (port,) in rows if port is not None}


def _ports(replica: ServiceProcess) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {c.laddr.port for c in psutil.Process(replica.pid).net_connections("tcp")}
    return set()


async def _busy(stack: Stack, replicas: list[ServiceProcess], within: float = 10) -> ServiceProcess:
    """The replica at work, once one is: running a database statement (an import) or
    using CPU (SSH sessions). A kill then cuts work in flight, not an idle process."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        procs = {}
        for replica in replicas:
            with contextlib.suppress(psutil.Error):
                procs[replica.pid] = psutil.Process(replica.pid)
                procs[replica.pid].cpu_percent(None)
        await asyncio.sleep(0.5)
        active = await _active_ports(stack)
        for replica in replicas:
            if _ports(replica) & active:
                return replica
        for replica in replicas:
            with contextlib.suppress(psutil.Error, KeyError):
                if procs[replica.pid].cpu_percent(None) >= BUSY_CPU_PERCENT:
                    return replica
    return replicas[0]


async def _faults(stack: Stack, options: LoadOptions, kills: list[Kill]) -> None:
    begun = time.monotonic()
    plan = sorted(
        (at, name)
        for at, name in (
            (options.kill_gateway_at, "gateway"),
            (options.kill_importer_at, "importer"),
        )
        if at is not None
    )
    for at, name in plan:
        await asyncio.sleep(max(0.0, begun + at * options.seconds - time.monotonic()))
        victim = await _busy(stack, stack.deployment.of(name))
        port = int(victim.env["COURIER_GATEWAY_PORT"]) if name == "gateway" else None
        killed, ready = await stack.kill_and_restart(victim)
        kills.append(Kill(name, port, killed, ready))


async def run_load(options: LoadOptions, work: Path) -> LoadResult:
    async with running_stack(
        work,
        gateways=options.gateways,
        importers=options.importers,
        partners=options.partners,
        database_url=options.database_url,
        **options.overrides,
    ) as stack:
        uploads = Uploads(stack, work / "outgoing")
        kills: list[Kill] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(stack, stop))
        rnd = random.Random(options.seed)
        started, started_at = time.monotonic(), time.time()
        end = started + options.seconds
        await asyncio.gather(
            _faults(stack, options, kills),
            *(
                keep_uploading(
                    uploads, p, options.every, options.sizes, end, random.Random(rnd.random())
                )
                for p in stack.partners
            ),
        )
        duration = time.monotonic() - started
        report = await reconcile(stack.db, uploads.all, settle=options.settle)
        stop.set()
        await sampler
        of_kill, other, details = _by_kill(uploads.all, kills)
        return LoadResult(
            options,
            started_at,
            duration,
            uploads.all,
            kills,
            report,
            stack.deployment.peak_rss_mb(),
            of_kill,
            other,
            details,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--every", type=float, default=60, help="seconds between a partner's files")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--importers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=120)
    parser.add_argument("--no-kills", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (service logs)")
    args = parser.parse_args()
    kill = not args.no_kills
    options = LoadOptions(
        partners=args.partners,
        seconds=args.seconds,
        every=args.every,
        gateways=args.gateways,
        importers=args.importers,
        kill_gateway_at=0.4 if kill else None,
        kill_importer_at=0.6 if kill else None,
        settle=args.settle,
    )
    work = Path(tempfile.mkdtemp(prefix="courier-load-"))
    try:
        result = asyncio.run(run_load(options, work))
    finally:
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(result.lines()))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
