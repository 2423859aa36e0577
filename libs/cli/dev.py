"""`courier dev up`: the whole stack on one machine with embedded defaults."""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from courier.cli import processes, provision, stack
from courier.cli.service import SERVICES
from courier.cli.users import actor
from courier.common import console_users
from courier.common.db.engine import Database
from courier.common.db.migrate import upgrade_sync
from courier.common.passwords import generate_password, verify_password
from courier.common.storage import file_url

# Consumers first, so nothing a producer announces waits for them; the front doors last.
SERVICE_ORDER = SERVICES
DEMO_TENANT = "demo"
DEMO_USER = "demo"
# Console users: (name, role, tenant, what they see).
DEMO_CONSOLE_USERS = (
    ("admin", "admin", None, "every tenant, users and tokens"),
    (f"{DEMO_TENANT}-viewer", "customer", DEMO_TENANT, f"tenant {DEMO_TENANT} only"),
)
DEMO_FEED = {
    "name": "leave-balances",
    "kind": "leave_balances",
    "pattern": "leave*.csv",
}


def available_services() -> list[str]:
    return [s for s in SERVICE_ORDER if importlib.util.find_spec(f"courier.{s}.app") is not None]


def _kept(path: Path, make: Callable[[], str]) -> str:
    """A value made on the first run and kept in the data dir (owner-only), so runs agree."""
    if not path.exists() or not path.read_text().strip():
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


async def _seed_console(db: Database, data_dir: Path) -> list[tuple[str, str, str]]:
    """The demo console users, each with the password kept for it: (name, password, sees)."""
    shown = []
    for username, role, tenant, sees in DEMO_CONSOLE_USERS:
        password = _kept(data_dir / f"console-{username}.password", generate_password)
        async with db.transaction() as s:
            user = await console_users.find_user(s, username)
            if user is None:
                await console_users.create_user(
                    s, username=username, role=role, tenant=tenant, password=password, by=actor()
                )
            elif not verify_password(user.password_hash, password):
                # Changed since (or the kept file was lost): print what signs in.
                await console_users.reset_password(s, username, password, by=actor())
        shown.append((username, password, sees))
    return shown


async def _seed(database_url: str, data_dir: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """The demo tenant, SFTP account and feed; the SFTP password and the console users."""
    password_file = data_dir / "demo-password"
    db = Database(database_url)
    try:
        tenant = await provision.ensure_tenant(db, DEMO_TENANT, "Demo Customer", "Europe/London")
        if not await provision.account_exists(db, DEMO_USER):
            password = generate_password()
            # The local demo logs in with a password from this machine only.
            await provision.create_account(
                db,
                tenant,
                DEMO_USER,
                password,
                auth_policy="password",
                allowed_cidrs=["127.0.0.1/32", "::1/128"],
            )
            password_file.write_text(password)
            password_file.chmod(0o600)
        await provision.upsert_feed(
            db, tenant, DEMO_FEED["name"], DEMO_FEED["kind"], DEMO_FEED["pattern"], {}
        )
        signins = await _seed_console(db, data_dir)
    finally:
        await db.dispose()
    sftp = password_file.read_text().strip() if password_file.exists() else "(set earlier)"
    return sftp, signins


class ServiceDied(RuntimeError):
    """A service ended without being asked to: which one, how, and its log's last lines."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.tail = processes.log_tail(log)
        said = f"the last lines of {log}:" if self.tail else f"nothing in {log}"
        super().__init__(
            f"{name} stopped on its own: it {processes.ended(proc.returncode)}; {said}"
        )


def _interrupt(*_: object) -> None:
    """SIGTERM stops the stack as Ctrl-C does (and Ctrl-C does even where a shell that
    started it in the background set SIGINT to be ignored)."""
    raise KeyboardInterrupt


def up(data_dir: Path, sftp_port: int, console_port: int, console: Console) -> None:
    """Run the stack until Ctrl-C (or SIGTERM): ServiceDied if a child ends on its own."""
    started = time.monotonic()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    database_url = f"sqlite+aiosqlite:///{data_dir / 'courier.db'}"
    nats_port = processes.free_port()
    env = {
        "COURIER_NATS_URL": f"nats://127.0.0.1:{nats_port}",
        "COURIER_DATABASE_URL": database_url,
        "COURIER_STORAGE_URL": file_url(data_dir / "storage"),
        # The embedded stand-in for the region's backup bucket.
        "COURIER_BACKUP_URL": file_url(data_dir / "backup"),
        "COURIER_GATEWAY_PORT": str(sftp_port),
        "COURIER_GATEWAY_HOST_KEY_DIR": str(data_dir / "hostkeys"),
        # Well inside the 10 s a stop of the stack waits before it kills.
        "COURIER_GATEWAY_DRAIN_SECONDS": "3",
        "COURIER_CONSOLE_PORT": str(console_port),
        "COURIER_CONSOLE_BASE_URL": f"http://127.0.0.1:{console_port}",
        "COURIER_POLL_RECONCILE_SECONDS": "30",
    }
    # Every `courier` command run next to the stack reads these (see `courier.cli.stack`).
    held = stack.hold(data_dir, env)
    procs: list[subprocess.Popen[bytes]] = []
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        nats = processes.start_nats(data_dir / "jetstream", nats_port, logs / "nats-server.log")
        procs.append(nats)
        upgrade_sync(database_url)
        password, signins = asyncio.run(_seed(database_url, data_dir))
        # Kept, so a browser stays signed in across restarts of the stack.
        secret_key = _kept(data_dir / "console-secret-key", lambda: secrets.token_urlsafe(32))

        services: list[tuple[str, subprocess.Popen[bytes], str]] = []
        for name in available_services():
            port = console_port if name == "console" else processes.free_port()
            svc_env = {**env, "COURIER_HEALTH_PORT": "0" if name == "console" else str(port)}
            if name == "console":
                svc_env["COURIER_CONSOLE_SECRET_KEY"] = secret_key
            proc = processes.start_service(name, svc_env, logs / f"{name}.log")
            procs.append(proc)
            services.append((name, proc, f"http://127.0.0.1:{port}/readyz"))
        for name, proc, url in services:
            if not processes.wait_ready(url, proc):
                if proc.poll() is not None:
                    raise ServiceDied(name, proc, logs / f"{name}.log")
                raise RuntimeError(f"{name} did not become ready; see {logs / (name + '.log')}")

        elapsed = time.monotonic() - started
        console.print(
            f"[bold green]Courier is up[/] in {elapsed:.1f} s ({', '.join(s[0] for s in services)})"
        )
        console.print(f"  data:     {data_dir}")
        console.print(f"  logs:     {logs}")
        console.print(f"  console:  http://127.0.0.1:{console_port}/  sign in as:")
        for username, user_password, sees in signins:
            console.print(
                f"    {username:<14} password: {user_password}  ({sees})",
                soft_wrap=True,
                highlight=False,
            )
        console.print(f"  sftp:     user {DEMO_USER}, password: {password}", highlight=False)
        console.print("  connect:")
        console.print(
            f"    sftp -P {sftp_port} -o StrictHostKeyChecking=accept-new {DEMO_USER}@127.0.0.1",
            soft_wrap=True,
            highlight=False,
        )
        console.print(
            "  cli:      `courier imports list` (any command) run from here uses this stack;",
            "`courier dev env` prints its settings",
            highlight=False,
        )
        console.print(
            "  then:     put leave_balances.csv /inbound/   (Ctrl-C here stops everything)"
        )
        watched = [("nats-server", nats, logs / "nats-server.log")] + [
            (name, proc, logs / f"{name}.log") for name, proc, _ in services
        ]
        while True:
            for name, proc, log in watched:
                if proc.poll() is not None:
                    raise ServiceDied(name, proc, log)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        # Services first so they drain, then the bus they drain into.
        processes.stop_all(list(reversed(procs[1:])))
        processes.stop_all(procs[:1])
        stack.release(held)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("stopped")
