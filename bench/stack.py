"""The deployed stack for stack-level benches: services as processes, partners, uploads and
the reconciliation of what was sent against what was imported.

    async with running_stack(work, gateways=2, importers=2, partners=20) as stack:
        uploads = Uploads(stack, work / "outgoing")
        await uploads.send(stack.partners[0], "leave_0001.csv", leave_file(10_000, seq=1))
        report = await reconcile(stack.db, uploads.all, settle=60)
        print("\\n".join(report.lines()))

`running_stack` starts Courier as it is deployed, on PostgreSQL + NATS JetStream:

- a fresh database, migrated, on the PostgreSQL server of `COURIER_TEST_DATABASE_URL`
  (default `postgresql+asyncpg://postgres@127.0.0.1:5432/test`), dropped at the end;
- the NATS server of `COURIER_TEST_NATS_URL` (else an embedded nats-server) under a
  namespace of the run's own, so runs and tests share a server without crosstalk;
- `file://` storage and the gateway host keys in `work` (every replica shares both, as
  pods share a bucket and a Secret);
- `gateways` gateway and `importers` importer replicas, each its own process
  (`tests/support/deployed.py`: SIGKILL, SIGTERM, restart, RSS). Each gateway listens on
  its own port (`stack.gateway_ports`); a client that loses one tries the next, as a
  load balancer would send it elsewhere. Every process runs an outbox relay, so the
  gateway's `courier.file.received` events reach the importers without another service.

Settings differ from the defaults only where a bench needs it: no flood limits and no
address bans (every partner connects from 127.0.0.1: one partner's client giving up
mid-login would otherwise shut every partner out for an hour), and `ack_wait_seconds`
15 (a killed importer's file comes back in 15 s instead of 60). `overrides`
(`COURIER_*`) change any of them.

`partners=n` (or `stack.provision(n)` later) makes n partners: each a tenant with a
`leave_balances` feed (`leave_*.csv`) and an SFTP account that logs in with password
and key, from 127.0.0.1. Partners alternate between OpenSSH's `sftp` (through
`sshpass`, commands on stdin) and asyncssh as their client.

`Uploads.send` uploads one file to `/inbound`, retrying on another gateway when an
attempt fails (up to `max_attempts`), and keeps every attempt: the port, its start and
end, and the kind of error (`refused`, `cut`, `auth`, `sftp`, `timeout`, `other`).
The upload's end is when the server acknowledged the file's close (asyncssh) or the
client exited after it (OpenSSH): the file is then recorded and its event staged.

`reconcile` reads the database and matches every upload to its received-file rows and
imports by tenant and name, waiting up to `settle` seconds for the imports still
running. It reports latency from the upload's end to its import's commit
(`imports.finished_at`), files lost (the client was told the file was stored and no
import exists; split into never recorded and recorded but never imported), files
imported twice (more than one import of a file that is not a `duplicate`), files
recorded that no client sent, and imports by status. A retried upload whose first
attempt was recorded before its connection was cut arrives twice with the same
bytes: the second import is a `duplicate` and applies nothing, which is counted, not
an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
from sqlalchemy import select

from courier.cli import provision
from courier.common.db.engine import Database
from courier.common.db.models import Import, ReceivedFile, Tenant
from courier.common.storage import file_url
from courier.gateway import admin
from tests.support import infra
from tests.support.clients import openssh_sftp
from tests.support.deployed import Deployment, ServiceProcess, deployment
from tests.support.fixtures_data import LEAVE_HEADER

DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PASSWORD = "Stack-Bench-Passw0rd-Long"
CLIENTS = ("openssh", "asyncssh")
# Imports that applied (or will apply) the file: two of these for one upload is a double.
APPLIED = ("completed", "completed_with_errors", "awaiting_approval", "scheduled")


@dataclass(frozen=True)
class Partner:
    slug: str
    username: str
    key_path: Path
    client: str
    password: str = PASSWORD


@dataclass
class Stack:
    """A running deployment, its database and its settings."""

    work: Path
    settings: dict[str, str]
    deployment: Deployment
    db: Database
    partners: list[Partner] = field(default_factory=list)

    @property
    def gateways(self) -> list[ServiceProcess]:
        return self.deployment.of("gateway")

    @property
    def importers(self) -> list[ServiceProcess]:
        return self.deployment.of("importer")

    @property
    def gateway_ports(self) -> list[int]:
        return [int(g.env["COURIER_GATEWAY_PORT"]) for g in self.gateways]

    async def add(self, name: str, **overrides: str) -> ServiceProcess:
        """Another replica of `name`, started and ready (a gateway gets a port of its own)."""
        if name == "gateway":
            overrides.setdefault("COURIER_GATEWAY_PORT", str(infra.free_port()))
        return await asyncio.to_thread(self.deployment.add, name, **overrides)

    async def kill_and_restart(
        self, service: ServiceProcess, down: float = 0.0
    ) -> tuple[float, float]:
        """SIGKILL `service`, leave it down `down` seconds, start its replacement; returns
        when it was killed and when the replacement was ready (epoch seconds)."""
        await asyncio.to_thread(service.kill)
        killed = time.time()
        await asyncio.sleep(down)
        await asyncio.to_thread(service.start)
        return killed, time.time()

    async def provision(self, count: int, prefix: str = "p") -> list[Partner]:
        """`count` more partners; argon2 runs in threads, a few accounts at a time.

        Running gateways learn new accounts' allowlists at their next state refresh, so
        this returns after one has passed.
        """
        first = len(self.partners)
        keys = self.work / "partner-keys"
        keys.mkdir(exist_ok=True)
        gate = asyncio.Semaphore(4)

        async def one(index: int) -> Partner:
            slug = f"{prefix}{index:04d}"
            key_path = keys / f"{slug}_ed25519"
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(key_path)
            key_path.chmod(0o600)
            async with gate:
                tenant = await provision.ensure_tenant(self.db, slug, f"Partner {slug}")
                await provision.upsert_feed(
                    self.db, tenant, "leave", "leave_balances", "leave_*.csv", {}
                )
                await admin.create_account(
                    self.db,
                    tenant,
                    f"{slug}-sftp",
                    password=PASSWORD,
                    keys=[key.export_public_key().decode()],
                    allow=["127.0.0.1/32"],
                )
            return Partner(slug, f"{slug}-sftp", key_path, CLIENTS[index % len(CLIENTS)])

        made = list(await asyncio.gather(*(one(first + i) for i in range(count))))
        self.partners += made
        if any(g.alive() for g in self.gateways):
            refresh = float(self.settings.get("COURIER_GATEWAY_STATE_REFRESH_SECONDS", 5.0))
            await asyncio.sleep(refresh + 1)
        return made

    def sample_rss(self) -> dict[str, int]:
        """RSS in bytes of each running process now, by `name-replica`; peaks are kept."""
        counts: Counter[str] = Counter()
        sizes: dict[str, int] = {}
        for service in self.deployment.services:
            sizes[f"{service.name}-{counts[service.name]}"] = service.sample_rss()
            counts[service.name] += 1
        return sizes


@contextlib.asynccontextmanager
async def running_stack(
    work: Path,
    *,
    gateways: int = 1,
    importers: int = 1,
    partners: int = 0,
    database_url: str | None = None,
    **overrides: str,
) -> AsyncIterator[Stack]:
    """The stack described above with `partners` provisioned before the services start
    (`stack.partners`); stopped, and its database dropped, when the block ends.

    `database_url`: a migrated, empty database of the caller's (a test's), used as is.
    """
    async with (
        _database(database_url) as url,
        _deployed(work, url, gateways, importers, partners, overrides) as stack,
    ):
        yield stack


@contextlib.asynccontextmanager
async def _database(given: str | None) -> AsyncIterator[str]:
    if given is not None:
        yield given
        return
    server = os.environ.get("COURIER_TEST_DATABASE_URL", DEFAULT_SERVER)
    databases = infra.PostgresDatabases(server)
    await asyncio.to_thread(databases.prepare_template)
    url = await asyncio.to_thread(databases.create)
    try:
        yield url
    finally:
        await asyncio.to_thread(databases.drop, url)
        await asyncio.to_thread(databases.close)


@contextlib.asynccontextmanager
async def _deployed(
    work: Path, url: str, gateways: int, importers: int, partners: int, overrides: dict[str, str]
) -> AsyncIterator[Stack]:
    with infra.nats_url() as nats:
        settings = {
            "COURIER_DATABASE_URL": url,
            "COURIER_NATS_URL": nats,
            "COURIER_NATS_NAMESPACE": f"stack{uuid.uuid4().hex[:10]}",
            "COURIER_STORAGE_URL": file_url(work / "storage"),
            "COURIER_GATEWAY_HOST": "127.0.0.1",
            "COURIER_GATEWAY_HOST_KEY_DIR": str(work / "hostkeys"),
            "COURIER_GATEWAY_FLOOD_CONNECTIONS": "0",
            "COURIER_GATEWAY_FLOOD_UNAUTHENTICATED": "0",
            "COURIER_GATEWAY_BAN_AFTER_FAILURES": "1000000",
            "COURIER_GATEWAY_DRAIN_SECONDS": "2",
            "COURIER_ACK_WAIT_SECONDS": "15",
            "COURIER_LOG_LEVEL": "INFO",
            **overrides,
        }
        db = Database(url)
        with deployment(work, settings) as deployed:
            stack = Stack(work, settings, deployed, db)
            try:
                if partners:
                    await stack.provision(partners)
                for name, count in (("importer", importers), ("gateway", gateways)):
                    for _ in range(count):
                        port = {"COURIER_GATEWAY_PORT": str(infra.free_port())}
                        deployed.add(name, start=False, **(port if name == "gateway" else {}))
                # All at once: a start is mostly imports, seconds each on a busy machine.
                await asyncio.gather(*(asyncio.to_thread(s.start) for s in deployed.services))
                yield stack
            finally:
                # All at once too: each SIGTERM waits for its process's drain.
                await asyncio.gather(*(asyncio.to_thread(s.stop) for s in deployed.services))
                await db.dispose()


# ---------------------------------------------------------------- files and uploads


def leave_file(size: int, seq: int) -> bytes:
    """A leave-balance CSV of about `size` bytes whose content is unique to `seq`.

    The same employees each time with the first balance changed, as a payroll's daily
    file mostly repeats yesterday's.
    """
    rows = max(1, (size - len(LEAVE_HEADER)) // 31)
    body = _rows(rows)
    first = f"X{seq:07d},annual,{seq % 100000}.00,2026-11-01\n"
    return (LEAVE_HEADER + first).encode() + body


_ROWS: dict[int, bytes] = {}


def _rows(count: int) -> bytes:
    if count not in _ROWS:
        kinds = ("annual", "sick", "toil", "parental")
        _ROWS[count] = "".join(
            f"E{i // 4:07d},{kinds[i % 4]},{(i * 37) % 40000 / 100:.2f},2026-11-01\n"
            for i in range(1, count)
        ).encode()
    return _ROWS[count]


class UploadFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Attempt:
    port: int
    started: float
    ended: float
    error: str | None = None
    detail: str = ""


@dataclass
class Upload:
    tenant: str
    name: str
    size: int
    client: str
    attempts: list[Attempt] = field(default_factory=list)
    ended_at: float | None = None  # epoch seconds of the attempt that succeeded

    @property
    def ok(self) -> bool:
        return self.ended_at is not None


def _openssh_kind(stderr: str) -> str:
    text = stderr.lower()
    if "connection refused" in text:
        return "refused"
    if any(
        s in text
        for s in ("connection closed", "connection reset", "broken pipe", "lost connection")
    ):
        return "cut"
    if "permission denied" in text:
        return "auth"
    if "couldn't" in text or "failure" in text or "close remote" in text:
        return "sftp"
    return "other"


async def put_openssh(port: int, partner: Partner, local: Path, name: str) -> None:
    """OpenSSH's `sftp` puts `local` as /inbound/`name`; raises UploadFailed."""
    try:
        result = await openssh_sftp(
            port,
            partner.username,
            [f"put {local} /inbound/{name}"],
            password=partner.password,
            identity=partner.key_path,
            within=300,
        )
    except TimeoutError as exc:
        raise UploadFailed("timeout", "sftp did not finish within 300 s") from exc
    # Read from stdin, sftp exits 0 whatever its commands did, and a refused close is
    # `close remote: Failure` on stderr, with no "Couldn't": at LogLevel=ERROR any
    # stderr but the greeting means the file may not have been taken.
    said = [
        line for line in result.stderr.splitlines() if line and not line.startswith("Connected")
    ]
    if result.returncode != 0 or said or "Uploading" not in result.stdout:
        raise UploadFailed(_openssh_kind(result.stderr), result.stderr.strip()[-300:])


async def put_asyncssh(port: int, partner: Partner, body: bytes, name: str) -> None:
    """asyncssh writes `body` to /inbound/`name` and closes it; raises UploadFailed."""
    try:
        async with (
            asyncssh.connect(
                "127.0.0.1",
                port,
                username=partner.username,
                password=partner.password,
                client_keys=[str(partner.key_path)],
                known_hosts=None,
                agent_path=None,
                connect_timeout=30,
                login_timeout=60,
            ) as conn,
            conn.start_sftp_client() as sftp,
            sftp.open(f"/inbound/{name}", "wb") as fh,
        ):
            await asyncio.wait_for(fh.write(body), 300)
    except ConnectionRefusedError as exc:
        raise UploadFailed("refused", str(exc)) from exc
    except (
        asyncssh.ConnectionLost,
        asyncssh.SFTPConnectionLost,
        asyncssh.ChannelOpenError,
        ConnectionResetError,
        BrokenPipeError,
        asyncssh.DisconnectError,
    ) as exc:
        if isinstance(exc, asyncssh.PermissionDenied):
            raise UploadFailed("auth", str(exc)) from exc
        raise UploadFailed("cut", f"{type(exc).__name__}: {exc}") from exc
    except asyncssh.SFTPError as exc:
        raise UploadFailed("sftp", f"{type(exc).__name__}: {exc}") from exc
    except TimeoutError as exc:
        raise UploadFailed("timeout", str(exc) or "timed out") from exc
    except (OSError, asyncssh.Error) as exc:
        raise UploadFailed("other", f"{type(exc).__name__}: {exc}") from exc


class Uploads:
    """Every upload of a run with its attempts; a failed attempt is retried on the next
    gateway after a short pause, as a partner's scheduled job retries."""

    def __init__(self, stack: Stack, scratch: Path, max_attempts: int = 8) -> None:
        self.stack = stack
        self.scratch = scratch
        self.max_attempts = max_attempts
        self.all: list[Upload] = []
        self._next = 0
        scratch.mkdir(parents=True, exist_ok=True)

    def _port(self) -> int:
        ports = self.stack.gateway_ports
        self._next += 1
        return ports[self._next % len(ports)]

    async def send(self, partner: Partner, name: str, body: bytes) -> Upload:
        upload = Upload(partner.slug, name, len(body), partner.client)
        self.all.append(upload)
        local = self.scratch / f"{partner.slug}-{name}"
        if partner.client == "openssh":
            await asyncio.to_thread(local.write_bytes, body)
        try:
            for attempt_no in range(self.max_attempts):
                port = self._port()
                attempt = Attempt(port, time.time(), 0.0)
                upload.attempts.append(attempt)
                try:
                    if partner.client == "openssh":
                        await put_openssh(port, partner, local, name)
                    else:
                        await put_asyncssh(port, partner, body, name)
                except UploadFailed as exc:
                    attempt.ended, attempt.error, attempt.detail = time.time(), exc.kind, exc.detail
                    await asyncio.sleep(min(0.5 * (attempt_no + 1), 3.0))
                    continue
                attempt.ended = upload.ended_at = time.time()
                break
        finally:
            local.unlink(missing_ok=True)
        return upload

    def errors(self) -> Counter[str]:
        return Counter(a.error for u in self.all for a in u.attempts if a.error)


# ---------------------------------------------------------------- reconciliation


@dataclass
class Reconciliation:
    uploads: int = 0
    stored: int = 0  # uploads whose client was told the file was stored
    gave_up: int = 0
    imported: int = 0  # stored uploads with exactly one import that applied
    never_recorded: list[str] = field(default_factory=list)
    never_imported: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)  # recorded, but no client sent it
    retried_duplicates: int = 0  # a cut upload recorded, then sent again: `duplicate`
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # upload end -> import commit, s

    @property
    def lost(self) -> list[str]:
        return self.never_recorded + self.never_imported

    @property
    def ok(self) -> bool:
        """Every stored file imported once, none doubled, nothing that was never sent."""
        return not (self.lost or self.doubled or self.unsent)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]

    def lines(self) -> list[str]:
        out = [
            f"uploads: {self.uploads}, stored: {self.stored}, given up: {self.gave_up}",
            f"imported once: {self.imported}; lost: {len(self.lost)} "
            f"(never recorded {len(self.never_recorded)}, recorded but never imported "
            f"{len(self.never_imported)}); imported twice: {len(self.doubled)}; "
            f"recorded but never sent: {len(self.unsent)}",
            f"retries of a recorded file, imported as duplicate: {self.retried_duplicates}",
            "imports by status: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "none"),
        ]
        if self.latencies:
            out.append(
                f"upload end -> import committed: p50 {statistics.median(self.latencies):.2f} s, "
                f"p99 {self.percentile(0.99):.2f} s, max {max(self.latencies):.2f} s"
            )
        for label, names in (
            ("never recorded", self.never_recorded),
            ("never imported", self.never_imported),
            ("imported twice", self.doubled),
            ("never sent", self.unsent),
        ):
            if names:
                out.append(f"{label}: {', '.join(names[:10])}")
        return out


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def _ledger(db: Database) -> dict[tuple[str, str], list[tuple[ReceivedFile, Import | None]]]:
    async with db.session() as session:
        rows = await session.execute(
            select(Tenant.slug, ReceivedFile, Import)
            .join(Tenant, Tenant.id == ReceivedFile.tenant_id)
            .outerjoin(Import, Import.file_id == ReceivedFile.id)
            .where(ReceivedFile.area == "inbound")
        )
        ledger: dict[tuple[str, str], list[tuple[ReceivedFile, Import | None]]] = {}
        for slug, received, imp in rows:
            ledger.setdefault((slug, received.name), []).append((received, imp))
        return ledger


async def reconcile(
    db: Database, uploads: Iterable[Upload], *, settle: float = 60
) -> Reconciliation:
    """Match uploads to the database, waiting up to `settle` s for every recorded file's
    import (an unfinished one counts as never imported)."""
    uploads = list(uploads)
    deadline = time.monotonic() + settle
    while True:
        ledger = await _ledger(db)
        waiting = any(imp is None for entries in ledger.values() for _, imp in entries)
        unrecorded = any(u.ok and (u.tenant, u.name) not in ledger for u in uploads)
        if not (waiting or unrecorded) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    report = Reconciliation(uploads=len(uploads))
    sent = {(u.tenant, u.name) for u in uploads}
    for key, entries in ledger.items():
        for _, imp in entries:
            if imp is not None:
                report.statuses[imp.status] += 1
        if key not in sent:
            report.unsent.append("/".join(key))
    for upload in uploads:
        key = (upload.tenant, upload.name)
        label = "/".join(key)
        entries = ledger.get(key, [])
        applied = [imp for _, imp in entries if imp is not None and imp.status != "duplicate"]
        report.retried_duplicates += sum(
            1 for _, imp in entries if imp is not None and imp.status == "duplicate"
        )
        if len(applied) > 1:
            report.doubled.append(label)
        if not upload.ok:
            report.gave_up += 1
            continue
        report.stored += 1
        if not entries:
            report.never_recorded.append(label)
        elif not applied:
            report.never_imported.append(label)
        elif len(applied) == 1:
            report.imported += 1
            finished = applied[0].finished_at
            if finished is not None and upload.ended_at is not None:
                report.latencies.append(_epoch(finished) - upload.ended_at)
    return report
