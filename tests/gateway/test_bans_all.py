"""`courier gateway bans --all`: every ended ban is listed, lifted ones marked so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from courier.common.db.engine import Database
from courier.common.db.models_console import ConsoleAuditEntry
from courier.common.db.models_gateway import Ban
from courier.common.settings import Settings
from courier.gateway import bans
from tests.support.cli import cli_env, courier_run


async def _ban(db: Database, address: str, failures: int = 5) -> None:
    await bans.ban(db, address, seconds=3600, failures=failures, reason=f"{failures} failed logins")


async def _end(db: Database, address: str, ago: timedelta) -> None:
    """The ban's hour ran out `ago`."""
    async with db.transaction() as s:
        await s.execute(
            update(Ban).where(Ban.address == address).values(until=datetime.now(UTC) - ago)
        )


async def _listed(settings: Settings, *args: str) -> list[dict[str, object]]:
    ran = await courier_run(cli_env(settings), "gateway", "bans", *args, "--json")
    assert ran.code == 0, ran.stderr
    return json.loads(ran.stdout)


async def test_all_lists_every_ended_ban_expired_or_lifted_and_the_active_ones(
    settings: Settings, db: Database
) -> None:
    for address, failures in [("198.51.100.1", 5), ("198.51.100.2", 6), ("198.51.100.3", 7)]:
        await _ban(db, address, failures)
    await _ban(db, "2001:db8::7", 9)
    await _end(db, "198.51.100.1", timedelta(days=3))
    await _end(db, "198.51.100.2", timedelta(minutes=1))
    lifted = await courier_run(cli_env(settings), "gateway", "bans", "--lift", "198.51.100.3")
    assert lifted.code == 0 and "lifted" in lifted.stdout, lifted.stderr

    everything = await _listed(settings, "--all")
    assert {b["address"]: (b["failures"], b["lifted"]) for b in everything} == {
        "198.51.100.1": (5, False),
        "198.51.100.2": (6, False),
        "198.51.100.3": (7, True),
        "2001:db8::7": (9, False),
    }
    # Without --all: what is in force now.
    assert [b["address"] for b in await _listed(settings)] == ["2001:db8::7"]


async def test_the_table_shows_every_ended_ban_and_which_was_lifted(
    settings: Settings, db: Database
) -> None:
    await _ban(db, "198.51.100.1")
    await _ban(db, "198.51.100.2")
    await _end(db, "198.51.100.1", timedelta(hours=1))
    assert await bans.lift(db, "198.51.100.2", actor="support@example.com")
    ran = await courier_run(cli_env(settings), "gateway", "bans", "--all")
    lines = ran.stdout.splitlines()
    assert lines[0].split("\t") == ["address", "failures", "reason", "banned at", "until", "lifted"]
    rows = {line.split("\t")[0]: line.split("\t")[-1] for line in lines[1:]}
    assert rows == {"198.51.100.1": "no", "198.51.100.2": "yes"}


async def test_lifting_is_in_the_console_audit_with_who_lifted_it(db: Database) -> None:
    await _ban(db, "198.51.100.9")
    assert await bans.lift(db, "198.51.100.9", actor="support@example.com")
    assert not await bans.lift(db, "198.51.100.9", actor="support@example.com")  # ended already
    async with db.session() as s:
        [entry] = await s.scalars(select(ConsoleAuditEntry))
    assert (entry.actor, entry.action, entry.target_id) == (
        "support@example.com",
        bans.LIFTED,
        "198.51.100.9",
    )


async def test_an_address_banned_twice_lists_both_bans(settings: Settings, db: Database) -> None:
    await _ban(db, "198.51.100.1", 5)
    await _end(db, "198.51.100.1", timedelta(days=1))
    await _ban(db, "198.51.100.1", 8)
    await _end(db, "198.51.100.1", timedelta(minutes=1))
    assert [b["failures"] for b in await _listed(settings, "--all")] == [8, 5]
