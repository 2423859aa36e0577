"""What support sees from `courier`: one line saying what to do when the database or the
bus is not there or an id is wrong (a traceback only with --debug), `--json` with ids in
full, and tables whose ids and names survive a pipe and a narrow terminal."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from courier.common.db.engine import Database
from courier.common.settings import Settings
from courier.common.storage import Storage
from tests.support.cli import Ran, bus_down, cli_env, courier_run
from tests.support.dev_stack import without_courier_settings
from tests.support.infra import free_port
from tests.support.tenant_objects import TenantObjects, populate

# A slug long enough that no column of 40 could hold it, or the name made of it.
LONG = "northumberland-and-tyne-community-health"


def one_error_line(ran: Ran) -> str:
    """The failure's only line on stderr; nothing on stdout, no traceback."""
    lines = ran.stderr.splitlines()
    assert ran.code == 1, ran
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout and ran.stdout == "", ran
    return lines[0]


async def test_no_database_here_says_to_start_the_dev_stack_and_creates_no_file(
    tmp_path: Path,
) -> None:
    # A fresh terminal in a directory with no dev stack: the default ./courier.db.
    ran = await courier_run(without_courier_settings(), "imports", "list", cwd=tmp_path)
    line = one_error_line(ran)
    assert "no Courier database at sqlite+aiosqlite:///courier.db" in line
    assert "`courier dev up`" in line and "COURIER_DATABASE_URL" in line
    assert not (tmp_path / "courier.db").exists()


async def test_an_unmigrated_database_says_to_upgrade_and_debug_shows_the_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "courier.db").touch()
    env = without_courier_settings()
    line = one_error_line(await courier_run(env, "incidents", "list", cwd=tmp_path))
    assert line == (
        "error: the database at sqlite+aiosqlite:///courier.db has no Courier tables: "
        "run `courier db upgrade`, or start `courier dev up`"
    )

    debug = await courier_run(env, "--debug", "incidents", "list", cwd=tmp_path)
    assert debug.code != 0 and "Traceback" in debug.stderr, debug

    assert (await courier_run(env, "db", "upgrade", cwd=tmp_path)).code == 0
    listed = await courier_run(env, "incidents", "list", "--json", cwd=tmp_path)
    assert listed.code == 0 and json.loads(listed.stdout) == [], listed


async def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://courier:s3cret-pw@127.0.0.1:{free_port()}/courier"
    ran = await courier_run(
        without_courier_settings(COURIER_DATABASE_URL=url), "tenants", "list", cwd=tmp_path
    )
    line = one_error_line(ran)
    assert line.startswith("error: cannot reach the database at postgresql+asyncpg://courier:***@")
    assert "COURIER_DATABASE_URL" in line and "s3cret-pw" not in ran.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_unreachable_bus_is_one_line_and_changes_nothing(
    settings: Settings, db: Database
) -> None:
    line = one_error_line(await courier_run(bus_down(settings), "outbox", "flush"))
    assert line.startswith("error: cannot reach the bus at nats://127.0.0.1:")
    assert line.endswith("nothing was changed")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("imports", "show", "{id}"), "error: no import {id}"),
        (("exports", "show", "{id}"), "error: no export {id}"),
        (("incidents", "show", "{id}"), "error: no incident {id}"),
        (("tenants", "show", "nobody"), "error: no tenant 'nobody'"),
        (("accounts", "show", "nobody"), "error: no account 'nobody'"),
        (("sources", "show", "nobody"), "error: no source(s) named 'nobody'"),
    ],
)
async def test_a_wrong_id_or_name_is_one_line_and_exit_1(
    db: Database, settings: Settings, args: tuple[str, ...], said: str
) -> None:
    wrong = str(uuid.uuid4())
    ran = await courier_run(cli_env(settings), *(a.format(id=wrong) for a in args))
    assert one_error_line(ran) == said.format(id=wrong)


@pytest.fixture
async def objects(db: Database, storage: Storage) -> TenantObjects:
    return await populate(db, storage, LONG)


# Each command is a process of its own and reads through the console's handlers, which
# tests/console runs on both databases: here, one.
json_commands = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@json_commands
@pytest.mark.parametrize(
    ("args", "ids"),
    [
        (("tenants", "list"), lambda o: [o.tenant.id]),
        (("tenants", "show", LONG), lambda o: [o.tenant.id]),
        (("accounts", "list"), lambda o: [o.account.id]),
        (("accounts", "show", f"{LONG}-upload"), lambda o: [o.account.id]),
        (("imports", "list"), lambda o: [o.imported.id, o.held.id]),
        (("imports", "show", "{import}"), lambda o: [o.imported.id]),
        (("incidents", "list"), lambda o: [o.incident_id]),
        (("incidents", "show", "{incident}"), lambda o: [o.incident_id]),
        (("exports", "list"), lambda o: [o.export.id]),
        (("exports", "show", "{export}"), lambda o: [o.export.id]),
        (("gateway", "sessions"), lambda o: [o.session_id]),
    ],
)
async def test_json_parses_and_holds_every_id_in_full(
    settings: Settings, objects: TenantObjects, args: tuple[str, ...], ids: object
) -> None:
    ids_of = {
        "{import}": objects.imported.id,
        "{incident}": objects.incident_id,
        "{export}": objects.export.id,
    }
    filled = [str(ids_of.get(a, a)) for a in args]
    ran = await courier_run(cli_env(settings, COLUMNS="40"), *filled, "--json")
    assert ran.code == 0, ran
    data = json.loads(ran.stdout)
    for wanted in ids(objects):  # type: ignore[operator]
        assert str(wanted) in json.dumps(data), (wanted, data)


@json_commands
@pytest.mark.parametrize(
    "args",
    [
        ("tenants", "list"),
        ("accounts", "list"),
        ("imports", "list"),
        ("incidents", "list"),
        ("exports", "list"),
        ("gateway", "sessions"),
    ],
)
async def test_piped_tables_keep_ids_and_long_names_whole_in_40_columns(
    settings: Settings, objects: TenantObjects, args: tuple[str, ...]
) -> None:
    ran = await courier_run(cli_env(settings, COLUMNS="40"), *args)
    assert ran.code == 0, ran
    header, *rows = ran.stdout.splitlines()
    assert "\t" in header and rows, ran.stdout
    # One row per line, the long slug whole in it (a cut cell would end in "…").
    assert all(LONG in row for row in rows), ran.stdout
    assert "…" not in ran.stdout
    whole = {
        ("tenants", "list"): [objects.tenant.id, objects.tenant.name],
        ("accounts", "list"): [objects.account.id, objects.account.username],
        ("imports", "list"): [objects.imported.id, objects.imported.file_name],
        ("incidents", "list"): [objects.incident_id],
        ("exports", "list"): [objects.export.id, objects.export.file_name],
        ("gateway", "sessions"): [objects.session_id],
    }[args]
    for value in whole:
        assert str(value) in ran.stdout, (value, ran.stdout)
