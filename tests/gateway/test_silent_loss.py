"""No silent loss: every name a client can send is imported, or refused at `open`.

A refused name gets a clear SFTP status before a byte is written, and is in the session
audit and the log; an accepted one is stored, announced and imported. Nothing is
refused later, at `close`, and no temporary object stays behind in storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncssh
import pytest
from asyncssh import FX_FAILURE
from prometheus_client import REGISTRY

from courier.common.clock import ManualClock
from courier.common.db.engine import Database
from courier.common.settings import Settings
from courier.common.storage import FileStorage, Storage
from courier.gateway.sweeper import sweep
from courier.gateway.vfs import MAX_NAME_BYTES, NameRefused, check_upload, printable, resolve
from tests.gateway.conftest import Partner, audit_lines, audit_soon
from tests.support.imports import all_imports, finished_imports, received_names
from tests.support.services import eventually, running

BODY = b"employee_id,leave_type,balance_hours,as_of\nE100,annual,8,2026-11-01\n"


def _name_of_bytes(n: int) -> str:
    """An ASCII name exactly `n` bytes long."""
    return "x" * n if n < 5 else "n" * (n - 4) + ".csv"


# A spread of lengths from 1 to 300 bytes, and every edge: the limit, a file system's.
EDGES = (MAX_NAME_BYTES - 1, MAX_NAME_BYTES, MAX_NAME_BYTES + 1, 255, 256, 300)
LENGTHS = sorted({*range(1, 301, 13), *EDGES})
CONTROL = [chr(c) for c in (*range(0x01, 0x20), 0x7F)]
NAMES: list[str] = [
    *(_name_of_bytes(n) for n in LENGTHS),
    *(f"leave{c}2026.csv" for c in CONTROL),
    "Überstunden 2026.csv",
    "日本語の休暇.csv",
    "📄 leave.csv",
    "Cafe\u0301.csv",  # decomposed, as macOS clients send it
    "é" * (MAX_NAME_BYTES // 2),  # two bytes each: just fits
    "é" * (MAX_NAME_BYTES // 2 + 1),
    "invoice\u202ecsv.exe",
    "\u0085next-line.csv",
    "leave 2026 final.csv",
    " leading-space.csv",
    "trailing-space.csv ",
    "trailing-dot.csv.",
    "-dash-first.csv",
    "percent%20and#hash.csv",
]


# ------------------------------------------------------------ the rule, without a server


@pytest.mark.parametrize("length", range(1, 301))
def test_a_name_is_taken_up_to_the_limit_and_refused_beyond(length: int) -> None:
    loc = resolve("/inbound/" + _name_of_bytes(length))
    if length <= MAX_NAME_BYTES:
        check_upload(loc)
    else:
        with pytest.raises(NameRefused) as refused:
            check_upload(loc)
        assert (refused.value.code, refused.value.reason) == ("permission_denied", "too_long")


@pytest.mark.parametrize("char", [*CONTROL, "\u0085", "\u202e", "\u2066"], ids=repr)
def test_control_characters_are_refused_wherever_they_are(char: str) -> None:
    for name in (f"{char}a.csv", f"a{char}.csv", f"a.csv{char}"):
        with pytest.raises(NameRefused) as refused:
            check_upload(resolve("/inbound/" + name))
        assert refused.value.reason == "control_character"
        assert char not in str(refused.value)  # the message shows it escaped


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/inbound/leave.csv", None),
        ("/inbound/test/leave.csv", None),
        ("/inbound/.leave.csv.filepart", None),
        ("/inbound/Überstunden 2026.csv", None),
        ("/inbound/sub/leave.csv", "no_such_folder"),
        ("/inbound/test/sub/leave.csv", "no_such_folder"),
        ("/inbound/ leave.csv", "edge_space_or_dot"),
        ("/inbound/leave.csv ", "edge_space_or_dot"),
        ("/inbound/leave.csv.", "edge_space_or_dot"),
    ],
)
def test_names_taken_and_refused(path: str, reason: str | None) -> None:
    if reason is None:
        check_upload(resolve(path))
        return
    with pytest.raises(NameRefused) as refused:
        check_upload(resolve(path))
    assert refused.value.reason == reason


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    assert printable("a\x1b[2Jb\r\n\u202e.csv") == "a\\x1b[2Jb\\r\\n\\u202e.csv"
    assert printable("Überstunden.csv") == "Überstunden.csv"


# ------------------------------------------------------------ end to end


@dataclass
class Outcome:
    name: str
    stage: str  # "stored", or where it was refused: "open", "write", "close"
    code: int | None = None
    reason: str = ""


async def _upload(sftp: asyncssh.SFTPClient, path: bytes) -> tuple[str, int | None, str]:
    stage = "open"
    try:
        f = await sftp.open(path, "wb")
        stage = "write"
        await f.write(BODY)
        stage = "close"
        await f.close()
    except asyncssh.SFTPError as exc:
        return stage, exc.code, exc.reason
    return "stored", None, ""


def _temporaries(storage: Storage) -> list[str]:
    assert isinstance(storage, FileStorage)
    tmp = storage.root / ".tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


async def test_every_name_is_imported_or_refused_at_open_and_audited(
    partner: Partner, gateway_settings: Settings, db: Database, storage: Storage
) -> None:
    outcomes: list[Outcome] = []
    async with (
        running("importer", gateway_settings),
        running("gateway", gateway_settings),
        await partner.connect() as conn,
        conn.start_sftp_client() as sftp,
    ):
        for name in NAMES:
            stage, code, reason = await _upload(sftp, ("/inbound/" + name).encode())
            outcomes.append(Outcome(name, stage, code, reason))
        # Bytes that are no UTF-8 at all, and folders that do not exist.
        for raw in (b"/inbound/\xff\xfe.csv", b"/inbound/sub/leave.csv"):
            stage, code, reason = await _upload(sftp, raw)
            name = raw.removeprefix(b"/inbound/").decode("utf-8", "backslashreplace")
            outcomes.append(Outcome(name, stage, code, reason))

        stored = [o.name for o in outcomes if o.stage == "stored"]
        refused = [o for o in outcomes if o.stage != "stored"]
        # Nothing is refused after a byte was written.
        assert {o.stage for o in refused} == {"open"}, [o for o in refused if o.stage != "open"]
        unclear = [(o.name[:40], o.code, o.reason) for o in refused if o.code == FX_FAILURE]
        assert unclear == [] and all(o.reason for o in refused)
        # The names expected to pass did (so the refusals above are the rule, not luck).
        assert _name_of_bytes(MAX_NAME_BYTES) in stored and "Überstunden 2026.csv" in stored
        assert _name_of_bytes(MAX_NAME_BYTES + 1) not in stored
        assert not any(c in name for name in stored for c in CONTROL)

        # Every stored name is announced once and imported (here: no feed takes it, so
        # it is rejected with a result file that says which names are expected).
        imports = await finished_imports(db, len(stored))
        assert sorted(i.file_name for i in imports) == sorted(stored)
        assert sorted(await received_names(db)) == sorted(stored)
        assert all(i.status != "failed" for i in imports), [
            (i.file_name, i.status, i.error) for i in imports if i.status == "failed"
        ]

        # Every refusal is in the session audit, under a name a terminal shows safely.
        async def audited() -> list[str] | None:
            lines = [e for e in await audit_lines(db, "upload_refused")]
            return [e.path or "" for e in lines] if len(lines) >= len(refused) else None

        paths = await eventually(audited)
        for outcome in refused:
            shown = printable("/inbound/" + outcome.name)
            assert any(p.startswith(shown[:200]) for p in paths), outcome
        assert all(printable(p) == p for p in paths)

    assert _temporaries(storage) == []
    assert await all_imports(db)  # still there after the services stopped


async def test_a_rename_to_a_refused_name_is_refused_and_the_upload_kept(
    partner: Partner, gateway: Settings, db: Database, storage: Storage
) -> None:
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        async with sftp.open("/inbound/leave.csv.filepart", "wb") as f:
            await f.write(BODY)
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            await sftp.rename("/inbound/leave.csv.filepart", "/inbound/leave\r\n.csv")
        # The partner can still name it properly.
        await sftp.rename("/inbound/leave.csv.filepart", "/inbound/leave.csv")
        assert await sftp.listdir("/inbound") == [".", "..", "leave.csv", "test"]
    assert await eventually(lambda: received_names(db)) == ["leave.csv"]
    [line] = await audit_soon(db, "upload_refused")
    assert line.path == "/inbound/leave\\r\\n.csv"


async def test_a_storage_failure_at_close_leaves_no_temporary_object(
    partner: Partner, gateway: Settings, db: Database, storage: Storage
) -> None:
    """Whatever storage refuses at the end (here a folder where the file should go),
    the partner gets a clear failure, the audit says so, and nothing stays behind."""
    assert isinstance(storage, FileStorage)
    blocker = storage.root / "tenants" / "acme" / "inbound" / "leave.csv"
    blocker.mkdir(parents=True)
    async with await partner.connect() as conn, conn.start_sftp_client() as sftp:
        f = await sftp.open("/inbound/leave.csv", "wb")
        await f.write(BODY)
        with pytest.raises(asyncssh.SFTPFailure) as failed:
            await f.close()
    assert "logged for support" in failed.value.reason
    assert _temporaries(storage) == []
    lines = await eventually(lambda: audit_lines(db, "upload_refused"))
    assert [(e.path, e.reason) for e in lines] == [("/inbound/leave.csv", "storage failed")]


async def test_the_sweeper_removes_temporary_objects_a_crash_left_and_counts_them(
    storage: Storage,
) -> None:
    assert isinstance(storage, FileStorage)
    clock = ManualClock(datetime.now(UTC))
    crashed = await storage.open_write("tenants/acme/inbound/leave.csv")
    await crashed.write(b"half a file")
    [left] = (storage.root / ".tmp").iterdir()
    # Its gateway died two hours ago: nothing has written to it since.
    two_hours_ago = (clock.now() - timedelta(hours=2)).timestamp()
    os.utime(left, (two_hours_ago, two_hours_ago))
    live = await storage.open_write("tenants/acme/inbound/other.csv")
    await live.write(b"still coming")
    counted = REGISTRY.get_sample_value("courier_sftp_swept_temporary_objects_total") or 0.0

    assert await sweep(storage, timedelta(hours=1), clock) == 1

    assert len(_temporaries(storage)) == 1  # the live upload is untouched
    await live.write(b" and done", 12)
    await live.finalize()
    assert await storage.read("tenants/acme/inbound/other.csv") == b"still coming and done"
    swept = REGISTRY.get_sample_value("courier_sftp_swept_temporary_objects_total")
    assert swept == counted + 1
    assert await storage.list("tenants/acme") == [
        await storage.stat("tenants/acme/inbound/other.csv")
    ]
