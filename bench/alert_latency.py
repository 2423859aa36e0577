"""Delay from a window's end to the SMS handed to the provider (SNS in a moto server),
with N expectations due in the same minute, against a baseline of one expectation.

    .venv/bin/python -m bench.alert_latency [--expectations 10000]   (from the repo root)

Runs the monitor and the notifier each in its own process, as they are deployed
(`--one-process`: both in this process, sharing one event loop and one GIL), on a clock
that follows real time but can jump (an offset in shared memory): the clock is set one
second before the windows close, and each expectation's latency is its SMS's `sent_at`
minus its window's `closes_at`. Uses
COURIER_TEST_DATABASE_URL (a PostgreSQL server: a fresh database per run; default: a
temporary SQLite file, where every transaction queues for the one write lock) and
COURIER_TEST_NATS_URL (default: an embedded nats-server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade
from courier.common.db.models import Feed, Tenant
from courier.common.db.models_incidents import ExpectationWindow, Notification
from courier.common.logging import configure_logging
from courier.common.settings import Settings
from courier.notifier.rota import Rota, save_rota
from tests.support.infra import PostgresDatabases, nats_url
from tests.support.paging import moto_sns
from tests.support.services import eventually, running

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
DUE = DAY.replace(hour=9)
WINDOW = timedelta(minutes=60)
SPAWN = multiprocessing.get_context("spawn")


class SharedClock:
    """Real time plus an offset held in shared memory, so services in other processes
    follow the benchmark's jump."""

    def __init__(self, offset: Any) -> None:
        self.offset = offset  # multiprocessing.Value("d"): seconds

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset.value)

    def jump_to(self, when: datetime) -> None:
        self.offset.value = (when - datetime.now(UTC)).total_seconds()


def _serve(name: str, settings: Settings, offset: Any, ready: Any) -> None:
    """A service's own process: run until SIGTERM, as `courier service NAME` would."""
    configure_logging(name, settings.log_level, False)

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with running(name, settings, SharedClock(offset)):
            ready.set()
            await stop.wait()

    asyncio.run(serve())


@contextlib.asynccontextmanager
async def services(
    names: tuple[str, ...], settings: Settings, clock: SharedClock, one_process: bool
) -> AsyncIterator[None]:
    if one_process:
        async with contextlib.AsyncExitStack() as stack:
            for name in names:
                await stack.enter_async_context(running(name, settings, clock))
            yield
        return
    procs = []
    try:
        for name in names:
            ready = SPAWN.Event()
            proc = SPAWN.Process(
                target=_serve, args=(name, settings, clock.offset, ready), name=name
            )
            proc.start()
            procs.append(proc)
            if not await asyncio.to_thread(ready.wait, 120):
                raise RuntimeError(f"{name} did not start")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await asyncio.to_thread(proc.join, 30)


async def _seed(db: Database, n: int) -> None:
    async with db.transaction() as s:
        await save_rota(
            s,
            Rota.model_validate(
                {
                    "people": [{"name": "Ana", "phone": "+447700900001"}],
                    "rotations": [
                        {"name": "primary", "start": "2026-01-05T09:00", "people": ["Ana"]}
                    ],
                }
            ),
        )
        tenants = [
            Tenant(id=uuid.uuid4(), slug=f"t{i}", name=f"T{i}") for i in range((n + 99) // 100)
        ]
        s.add_all(tenants)
        await s.flush()
        s.add_all(
            Feed(
                tenant_id=tenants[i // 100].id,
                name=f"feed-{i}",
                kind="leave_balances",
                pattern=f"feed{i}_*.csv",
                spec={"expect": {"cron": "0 9 * * *", "timezone": "UTC", "window_minutes": 60}},
            )
            for i in range(n)
        )


async def _at_least(db: Database, n: int, model: type, *where: object) -> bool:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0) >= n


async def measure(
    n: int, nats: str, sns_url: str, database_url: str, one_process: bool
) -> list[float]:
    await upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        nats_url=nats,
        nats_namespace=f"bench{uuid.uuid4().hex[:8]}",
        sns_endpoint_url=sns_url,
        sns_region="eu-west-1",
        monitor_tick_seconds=0.2,
        notifier_tick_seconds=0.2,
        heartbeat_timeout_seconds=10**9,
        log_level="WARNING",
    )
    db = Database(database_url)
    await _seed(db, n)
    clock = SharedClock(SPAWN.Value("d", 0.0))
    clock.jump_to(DUE - timedelta(minutes=30))
    async with services(("monitor", "notifier"), settings, clock, one_process):
        await eventually(lambda: _at_least(db, n, ExpectationWindow), within=600)
        clock.jump_to(DUE + WINDOW - timedelta(seconds=1))
        await eventually(
            lambda: _at_least(db, n, Notification, Notification.status == "sent"),
            within=600,
            interval=0.05,
        )
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Notification.sent_at, ExpectationWindow.closes_at).join(
                    ExpectationWindow, ExpectationWindow.incident_id == Notification.incident_id
                )
            )
        ).all()
    await db.dispose()
    return [(sent - closes).total_seconds() for sent, closes in rows]


def pct(values: list[float], p: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]
        if len(values) > 1
        else values[0]
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expectations", type=int, default=10_000)
    parser.add_argument(
        "--one-process", action="store_true", help="monitor and notifier in this process"
    )
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server = os.environ.get("COURIER_TEST_DATABASE_URL")
    pg = PostgresDatabases(server) if server else None
    if pg:
        await asyncio.to_thread(pg.prepare_template)
    with tempfile.TemporaryDirectory() as tmp, nats_url() as nats, moto_sns() as sns:
        results = {}
        for n in (1, args.expectations):
            url = (
                await asyncio.to_thread(pg.create)
                if pg
                else f"sqlite+aiosqlite:///{Path(tmp) / f'bench{n}.db'}"
            )
            started = time.monotonic()
            try:
                results[n] = await measure(n, nats, sns.url, url, args.one_process)
            finally:
                if pg:
                    await asyncio.to_thread(pg.drop, url)
            print(f"{n:>6} expectations: run took {time.monotonic() - started:.1f} s")
    if pg:
        await asyncio.to_thread(pg.close)
    print(f"database: {'PostgreSQL' if pg else 'SQLite'}")
    print(
        "services: "
        + ("monitor and notifier in one process" if args.one_process else "one process each")
    )
    one, many = results[1], results[args.expectations]
    print(f"baseline (1 expectation):       p50 {pct(one, 50):.2f} s  p99 {pct(one, 99):.2f} s")
    print(
        f"{args.expectations} expectations (same minute): "
        f"p50 {pct(many, 50):.2f} s  p99 {pct(many, 99):.2f} s  max {max(many):.2f} s"
    )
    print(f"ratio p99 many/one: {pct(many, 99) / max(pct(one, 99), 1e-3):.1f}x (target p99 < 5 s)")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
