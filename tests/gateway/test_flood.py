"""A connection flood from one address is cut off before any key exchange (DHEat)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from courier.common.db.engine import Database
from courier.common.events import ALERT_RAISED, AlertRaised
from courier.common.settings import Settings
from tests.gateway.conftest import Partner
from tests.support.services import eventually, running
from tests.support.staged import staged

SSH_AUDIT = Path(sys.executable).with_name("ssh-audit")
REFUSED = "courier_sftp_refused_connections_total"
BURST = 38  # what ssh-audit's rate test opens


def refused(reason: str = "flood") -> float:
    return REGISTRY.get_sample_value(REFUSED, {"reason": reason}) or 0.0


@pytest.fixture
def flood_settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(
        update={
            "gateway_flood_connections": 20,
            "gateway_flood_window_seconds": 2.0,
            "gateway_flood_unauthenticated": 10,
        }
    )


@pytest.fixture
async def flood_gateway(flood_settings: Settings) -> AsyncIterator[Settings]:
    async with running("gateway", flood_settings):
        yield flood_settings


async def knock(port: int) -> tuple[asyncio.StreamWriter, bytes]:
    """Connect, send a version line, and read what the server says before the key exchange."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"SSH-2.0-Flood\r\n")
    try:
        first = await asyncio.wait_for(reader.read(64), 10)
    except ConnectionError:
        first = b""
    return writer, first


async def test_a_burst_of_connections_is_cut_off_before_the_key_exchange_and_alerted(
    partner: Partner, flood_gateway: Settings, db: Database
) -> None:
    before = refused()
    loop = asyncio.get_running_loop()
    started = loop.time()
    knocks = await asyncio.gather(*(knock(flood_gateway.gateway_port) for _ in range(BURST)))
    opened_within = loop.time() - started
    answered = [first for _, first in knocks if first.startswith(b"SSH-2.0-Courier")]
    dropped = [first for _, first in knocks if first == b""]

    # Ten may be logging in at once; the rest never saw the server's version line.
    assert len(answered) == flood_gateway.gateway_flood_unauthenticated, opened_within
    assert len(dropped) == BURST - len(answered)
    assert refused() - before == len(dropped)

    async def flood_alerts() -> list[AlertRaised]:
        return [
            e
            for e in await staged(db, ALERT_RAISED)
            if isinstance(e, AlertRaised) and e.kind == "sftp_connection_flood"
        ]

    [alert] = await eventually(flood_alerts)
    assert alert.details["address"] == "127.0.0.1"
    assert alert.cause_key == "sftp_connection_flood:127.0.0.1"

    for writer, _ in knocks:
        writer.close()
    # Still flooding within the window: refused, but alerted only once.
    _, first = await knock(flood_gateway.gateway_port)
    assert first == b""

    # A pause of one window later a real client logs in.
    await asyncio.sleep(flood_gateway.gateway_flood_window_seconds + 0.5)
    async with await partner.connect() as conn:
        assert conn.get_extra_info("username") == partner.username
    assert len(await flood_alerts()) == 1


async def test_connections_held_open_before_login_are_capped_per_address(
    partner: Partner, flood_gateway: Settings
) -> None:
    held = []
    for _ in range(flood_gateway.gateway_flood_unauthenticated):
        writer, first = await knock(flood_gateway.gateway_port)
        assert first.startswith(b"SSH-2.0-Courier")
        held.append(writer)
    _, first = await knock(flood_gateway.gateway_port)
    assert first == b""
    # Each one that ends frees its place.
    held.pop().close()

    async def admitted_again() -> bool:
        writer, first = await knock(flood_gateway.gateway_port)
        writer.close()
        return first.startswith(b"SSH-2.0-Courier")

    assert await eventually(admitted_again, within=5)
    for writer in held:
        writer.close()


def _stats(text: str) -> dict[str, int]:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    found = re.findall(r"([A-Za-z \"]+?):\s+[\d,.]+/sec, ([\d,]+) total", plain)
    return {name.strip(): int(total.replace(",", "")) for name, total in found}


def _interruptible() -> None:
    """Ctrl-C stops it even when the test runner was started in the background, where
    the shell ignores SIGINT and every process started below inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The database plays no part in a flood: one run is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ssh_audit_dheat_attack_gets_no_more_key_exchanges_than_the_limit(
    partner: Partner, gateway_settings: Settings
) -> None:
    """`ssh-audit --dheat` runs until interrupted (its worker processes too), then prints
    what it achieved."""
    settings = gateway_settings  # the shipped limits
    async with running("gateway", settings):
        proc = await asyncio.create_subprocess_exec(
            str(SSH_AUDIT), "--dheat", "3", "-p", str(settings.gateway_port), "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"}, start_new_session=True,
            preexec_fn=_interruptible,
        )  # fmt: skip
        try:
            await asyncio.sleep(7)
            os.killpg(proc.pid, signal.SIGINT)
            # Its worker processes wind down slowly on a busy machine.
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode(errors="replace")
    stats = _stats(text)
    assert stats, text
    # At most one window's worth of key exchanges, however hard it tries.
    assert stats["Successful DH KEX replies"] <= settings.gateway_flood_connections, text
    assert stats["Attempted TCP connections"] > 10 * settings.gateway_flood_connections, text
    assert "is using rate limiting" in text, text
