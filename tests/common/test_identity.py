"""The process identity: readable, unique per process start, short enough for its columns."""

from __future__ import annotations

import os
import re

import pytest
from sqlalchemy import text

from courier.common.db.engine import is_sqlite
from courier.common.identity import MAX_LENGTH, instance_name
from courier.common.runtime import Runtime
from courier.common.settings import Settings


def test_names_service_host_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "worker-7")
    name = instance_name("poller")
    assert re.fullmatch(rf"poller@worker-7:{os.getpid()}:[0-9a-f]{{6}}", name), name
    assert instance_name("poller") != name  # a restart with the same pid is someone else


def test_a_long_host_name_is_cut_not_the_unique_part(monkeypatch: pytest.MonkeyPatch) -> None:
    host = "courier-exporter-" + "x" * 240  # a fully qualified name may run to 253
    monkeypatch.setattr("socket.gethostname", lambda: host)
    name = instance_name("exporter")
    assert len(name) == MAX_LENGTH
    assert name.startswith("exporter@courier-exporter-x")
    assert re.search(rf":{os.getpid()}:[0-9a-f]{{6}}$", name), name


async def test_a_services_database_sessions_carry_its_instance_name(settings: Settings) -> None:
    """An operator reading `pg_stat_activity` sees which replica holds which session."""
    if is_sqlite(settings.database_url):
        pytest.skip("SQLite has no server sessions to name")
    runtime = Runtime("importer", settings)
    try:
        async with runtime.db.session() as s:
            named = await s.scalar(
                text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            )
    finally:
        await runtime.close()
    assert named == runtime.instance[:63]
    assert named.startswith("importer@")
